//! With the `demo` feature, turns `demo-site/` into the static table of the
//! demo's [`StaticSite`] (`$OUT_DIR/demo_site.rs`), with `txtd-site-gen`.

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "demo")]
    {
        use std::io;
        use std::path::PathBuf;

        let var = |name| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .ok_or(io::ErrorKind::NotFound)
        };
        let root = var("CARGO_MANIFEST_DIR")?.join("demo-site");
        txtd_site_gen::write_table(&root, &var("OUT_DIR")?.join("demo_site.rs"))?;
    }
    Ok(())
}
