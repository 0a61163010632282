//! Compresses the page's text assets (`static/*.{html,js,css,svg}`) with gzip at build time,
//! so the server sends them compressed to browsers that accept it without compressing on
//! every request. `src/web.rs` includes the generated table.

use std::io::Write;
use std::path::Path;
use std::{env, fs};

use flate2::write::GzEncoder;
use flate2::Compression;

fn main() {
    println!("cargo:rerun-if-changed=static");
    let out = env::var("OUT_DIR").expect("OUT_DIR");
    let mut names: Vec<String> = fs::read_dir("static")
        .expect("static/")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            [".html", ".js", ".css", ".svg"]
                .iter()
                .any(|x| n.ends_with(x))
        })
        .collect();
    names.sort();
    let mut table = String::from("&[\n");
    for name in names {
        let raw = fs::read(Path::new("static").join(&name)).expect("reading an asset");
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        if gz.len() >= raw.len() {
            continue;
        }
        let file = Path::new(&out).join(format!("{name}.gz"));
        fs::write(&file, gz).expect("writing a .gz");
        table.push_str(&format!(
            "    ({name:?}, {}, include_bytes!({:?})),\n",
            raw.len(),
            file.display().to_string()
        ));
    }
    table.push(']');
    fs::write(Path::new(&out).join("assets_gz.rs"), table).expect("writing assets_gz.rs");
}
