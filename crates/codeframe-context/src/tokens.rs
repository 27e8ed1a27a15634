//! Token counts with tiktoken's `cl100k_base` (the reference's tokenizer). The vocabulary is
//! embedded in the crate, so this works offline; it is loaded once per process.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tiktoken_rs::CoreBPE;

use crate::ContextError;

static CL100K: OnceLock<Result<CoreBPE, String>> = OnceLock::new();
static LOADS: AtomicUsize = AtomicUsize::new(0);

/// The process-wide `cl100k_base` tokenizer, loaded on first use.
pub fn tokenizer() -> Result<&'static CoreBPE, ContextError> {
    CL100K
        .get_or_init(|| {
            LOADS.fetch_add(1, Ordering::Relaxed);
            tiktoken_rs::cl100k_base().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ContextError::Tokenizer(e.clone()))
}

/// How many times this process built the tokenizer (loading the vocabulary takes ~100 ms; it
/// should happen once).
pub fn loads() -> usize {
    LOADS.load(Ordering::Relaxed)
}

/// Number of `cl100k_base` tokens in `text`. Special-token markers such as `<|endoftext|>`
/// count as ordinary text: content is data, never control.
pub fn count(text: &str) -> Result<i64, ContextError> {
    let n = tokenizer()?.encode_ordinary(text).len();
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Counts many texts, spread over the machine's cores. The result is in input order.
pub fn count_many(texts: &[&str]) -> Result<Vec<i64>, ContextError> {
    let bpe = tokenizer()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    // Small batches are not worth a thread.
    if threads == 1 || texts.len() < 64 {
        return texts.iter().map(|t| count(t)).collect();
    }
    let chunk = texts.len().div_ceil(threads);
    let mut out = Vec::with_capacity(texts.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|t| i64::try_from(bpe.encode_ordinary(t).len()).unwrap_or(i64::MAX))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(counts) => out.extend(counts),
                Err(_) => return Err(ContextError::Tokenizer("a tokenizer thread panicked".into())),
            }
        }
        Ok(())
    })?;
    Ok(out)
}
