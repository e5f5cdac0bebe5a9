//! A recipe read from TOML, its dry-run plan (stages, what each needs, FLOPs, GPU-hours), and
//! Algorithm 1's growth loop driven by hand (no training). `cargo run -p inheritune-recipe --example plan`

use inheritune_recipe::growth::Next;
use inheritune_recipe::{stages, Facts, Recipe};

fn main() -> inheritune_recipe::Result<()> {
    let recipe = Recipe::parse(
        r#"
name = "medium-sketch"
description = "GPT-2 medium shape, the paper's medium preset"
[data]
inputs = ["data/raw/openwebtext"]
[reference.model]
preset = "gpt2-medium"
[train]
preset = "owt-gpt2-medium"
[inheritune]
max_rounds = 3
[baselines]
depth = 16
"#,
    )?;
    print!("{}", inheritune_recipe::plan(&recipe)?);
    // The paper's medium rounds: 12L 2.87, 14L 2.84, 16L 2.81 against the reference's 2.81.
    let rule = stages::rule(&recipe, 24, &Facts::default()).expect("a fixed start depth");
    let mut losses = Vec::new();
    loop {
        match rule.next(2.815, &losses) {
            Next::Train { round, layers } => {
                let loss = [2.87, 2.84, 2.81][round - 1];
                println!("round {round}: {layers} layers -> {loss}");
                losses.push(loss);
            }
            end => {
                println!("{end:?}");
                break;
            }
        }
    }
    Ok(())
}
