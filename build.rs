//! `sqlx::migrate!` embeds the migrations when the crate is compiled, and cargo does not
//! know that it read them: without this, a migration added to `migrations/` is left out of
//! an incremental build until some source file changes.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
