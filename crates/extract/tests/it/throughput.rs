//! Rough throughput, printed: every HTML page of the Rust book (rustdoc/mdBook layout) and a
//! generated 200-page text PDF, single-threaded and on two threads. Meaningful in release:
//! `cargo test --release -p tale-extract -- --nocapture throughput`. Debug builds run a small
//! sample only, to keep the suite fast.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tale_extract::{Format, Limits, extract};

use crate::fixtures;

fn per_second(count: usize, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

/// Extracts every item on `threads` threads (each taking the next item, so one large page does
/// not leave a thread idle) and returns items per second.
fn run(items: &[Vec<u8>], format: &Format, threads: usize) -> f64 {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(bytes) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    extract(format, bytes, &Limits::default()).unwrap();
                }
            });
        }
    });
    per_second(items.len(), start.elapsed().as_secs_f64())
}

#[test]
fn throughput_html_rust_book() {
    let Some(docs) = crate::rust_docs() else {
        eprintln!("rust-docs not installed; skipping");
        return;
    };
    let mut paths = Vec::new();
    let mut dirs = vec![docs.join("book")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    if cfg!(debug_assertions) {
        paths.truncate(20);
    }
    let pages: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let bytes: usize = pages.iter().map(Vec::len).sum();
    let one = run(&pages, &Format::Html, 1);
    let two = run(&pages, &Format::Html, 2);
    println!(
        "HTML: {} pages, {:.0} KB average: {one:.0} pages/s on 1 thread, {two:.0} pages/s on 2 threads",
        pages.len(),
        bytes as f64 / pages.len() as f64 / 1024.0
    );
}

#[test]
fn throughput_pdf_200_pages() {
    let page_count = if cfg!(debug_assertions) { 20 } else { 200 };
    let lorem =
        "The quick brown fox jumps over the lazy dog while the knowledge base indexes every word.";
    let pages: Vec<Vec<String>> = (0..page_count)
        .map(|n| {
            (0..45)
                .map(|line| {
                    if line % 9 == 8 {
                        String::new()
                    } else {
                        format!("{n}.{line} {lorem}")
                    }
                })
                .collect()
        })
        .collect();
    let mut doc = fixtures::pdf(&pages);
    let bytes = fixtures::save(&mut doc);
    let start = Instant::now();
    let extracted = extract(&Format::Pdf, &bytes, &Limits::default()).unwrap();
    let one = per_second(page_count, start.elapsed().as_secs_f64());
    assert_eq!(extracted.sections.len(), page_count);
    let copies = vec![bytes; 4];
    let two = run(&copies, &Format::Pdf, 2) * page_count as f64;
    println!(
        "PDF: {page_count} pages of ~45 lines: {one:.0} pages/s on 1 thread, {two:.0} pages/s on 2 threads"
    );
}
