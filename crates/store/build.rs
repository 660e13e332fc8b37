//! `sqlx::migrate!` embeds the migration folders when the crate compiles; a file added to one
//! must compile it again.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
