//! Prints what extraction makes of a file: `cargo run --example dump -- FILE`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dump FILE");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("{path}: {error}");
            std::process::exit(1);
        }
    };
    let head = &bytes[..bytes.len().min(4096)];
    let Some(format) = tale_extract::detect(&path, None, head) else {
        eprintln!("{path}: not a format that can be extracted");
        std::process::exit(1);
    };
    let start = std::time::Instant::now();
    match tale_extract::extract(&format, &bytes, &tale_extract::Limits::default()) {
        Ok(extracted) => {
            println!(
                "format: {format:?}, title: {:?}, {} sections in {:?}",
                extracted.title,
                extracted.sections.len(),
                start.elapsed()
            );
            for section in &extracted.sections {
                println!(
                    "\n=== path {:?} page {:?} label {:?}",
                    section.heading_path, section.page, section.label
                );
                println!("{}", section.text);
            }
        }
        Err(error) => {
            eprintln!("{path}: {error}");
            std::process::exit(1);
        }
    }
}
