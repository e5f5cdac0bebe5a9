//! GPT-2's tokenizer (tokens identical to tiktoken's `encode_ordinary`).
//! `cargo run -p inheritune-data --example tokenize -- "Hello, world"`

fn main() -> inheritune_data::Result<()> {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Train smaller models that match larger ones.".into());
    let tokenizer = inheritune_data::Tokenizer::gpt2()?;
    let ids = tokenizer.encode_ordinary(&text)?;
    println!("{text:?} -> {} tokens: {ids:?}", ids.len());
    Ok(())
}
