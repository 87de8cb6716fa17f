//! Status codes and reason phrases (RFC 9110 §15), and the one place where
//! every refusal becomes a status.
//!
//! [`Refusal::status`] is a single exhaustive `match` over every layer's
//! error: a new error variant does not compile until it has a status.

use core::fmt;

use crate::{message, request, site, target};

/// An HTTP response status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Status(u16);

impl Status {
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 204 No Content.
    pub const NO_CONTENT: Self = Self(204);
    /// 206 Partial Content.
    pub const PARTIAL_CONTENT: Self = Self(206);
    /// 301 Moved Permanently.
    pub const MOVED_PERMANENTLY: Self = Self(301);
    /// 304 Not Modified.
    pub const NOT_MODIFIED: Self = Self(304);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 413 Content Too Large.
    pub const CONTENT_TOO_LARGE: Self = Self(413);
    /// 414 URI Too Long.
    pub const URI_TOO_LONG: Self = Self(414);
    /// 416 Range Not Satisfiable.
    pub const RANGE_NOT_SATISFIABLE: Self = Self(416);
    /// 431 Request Header Fields Too Large.
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Self = Self(431);
    /// 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 505 HTTP Version Not Supported.
    pub const HTTP_VERSION_NOT_SUPPORTED: Self = Self(505);

    /// The three-digit code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The reason phrase RFC 9110 §15 gives the code.
    pub const fn reason_phrase(self) -> &'static str {
        match self.0 {
            200 => "OK",
            204 => "No Content",
            206 => "Partial Content",
            301 => "Moved Permanently",
            304 => "Not Modified",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            413 => "Content Too Large",
            414 => "URI Too Long",
            416 => "Range Not Satisfiable",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }

    /// Whether a response with this status carries no body (RFC 9110 §6.4.1).
    pub const fn has_no_body(self) -> bool {
        matches!(self.0, 100..=199 | 204 | 304)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason_phrase())
    }
}

/// Why a request is answered with an error status instead of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Refusal {
    /// The head is malformed or too large.
    Request(request::Error),
    /// The head is well-formed but its meaning is refused.
    Message(message::Error),
    /// The request-target cannot name a path in the root.
    Target(target::Error),
    /// The site could not serve the path.
    Site(site::Error),
    /// The head did not arrive in time (408).
    Timeout,
}

impl Refusal {
    /// The status a refusal is answered with: the one error-to-status map.
    pub const fn status(self) -> Status {
        match self {
            Self::Request(e) => match e {
                request::Error::InvalidMethod
                | request::Error::InvalidTarget
                | request::Error::MissingVersion
                | request::Error::InvalidVersion
                | request::Error::InvalidFieldName
                | request::Error::InvalidFieldValue
                | request::Error::ObsoleteFold
                | request::Error::BareCr => Status::BAD_REQUEST,
                request::Error::UnsupportedVersion => Status::HTTP_VERSION_NOT_SUPPORTED,
                request::Error::RequestLineTooLong => Status::URI_TOO_LONG,
                request::Error::FieldLineTooLong
                | request::Error::TooManyFields
                | request::Error::HeadTooLarge => Status::REQUEST_HEADER_FIELDS_TOO_LARGE,
            },
            Self::Message(e) => match e {
                message::Error::MissingHost
                | message::Error::DuplicateHost
                | message::Error::InvalidHost
                | message::Error::InvalidContentLength
                | message::Error::ConflictingContentLength
                | message::Error::ContentLengthWithTransferEncoding
                | message::Error::TransferEncodingInHttp10
                | message::Error::ChunkedNotLast => Status::BAD_REQUEST,
                message::Error::UnknownTransferCoding | message::Error::UnknownMethod => {
                    Status::NOT_IMPLEMENTED
                }
                message::Error::MethodNotAllowed => Status::METHOD_NOT_ALLOWED,
                message::Error::BodyNotAccepted => Status::CONTENT_TOO_LARGE,
            },
            Self::Target(e) => match e {
                target::Error::InvalidForm
                | target::Error::AsteriskNotOptions
                | target::Error::MalformedPercent
                | target::Error::EncodedNul
                | target::Error::EncodedSlash
                | target::Error::Fragment
                | target::Error::AboveRoot => Status::BAD_REQUEST,
                target::Error::TooLong => Status::URI_TOO_LONG,
            },
            Self::Site(e) => match e {
                site::Error::NotFound => Status::NOT_FOUND,
                site::Error::Forbidden => Status::FORBIDDEN,
                site::Error::Io => Status::INTERNAL_SERVER_ERROR,
            },
            Self::Timeout => Status::REQUEST_TIMEOUT,
        }
    }

    /// Whether the connection must close after the answer: its framing is
    /// in doubt, or the client sent something it should not have.
    /// Only a site's answer (404, 403, 500) keeps the connection.
    pub const fn closes_connection(self) -> bool {
        !matches!(self, Self::Site(_))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(e) => e.fmt(f),
            Self::Message(e) => e.fmt(f),
            Self::Target(e) => e.fmt(f),
            Self::Site(e) => e.fmt(f),
            Self::Timeout => f.write_str("request head timed out"),
        }
    }
}

impl core::error::Error for Refusal {}

impl From<request::Error> for Refusal {
    fn from(e: request::Error) -> Self {
        Self::Request(e)
    }
}

impl From<message::Error> for Refusal {
    fn from(e: message::Error) -> Self {
        Self::Message(e)
    }
}

impl From<target::Error> for Refusal {
    fn from(e: target::Error) -> Self {
        Self::Target(e)
    }
}

impl From<site::Error> for Refusal {
    fn from(e: site::Error) -> Self {
        Self::Site(e)
    }
}
