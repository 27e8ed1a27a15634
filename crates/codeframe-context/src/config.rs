/// Limits and thresholds of context management.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextConfig {
    /// An agent's token budget (the reference's 180,000).
    pub token_limit: i64,
    /// Fraction of the budget at which a flash save is due (the reference's 0.8).
    pub flash_save_threshold: f64,
    /// Largest content accepted for one item, in bytes (default 1 MiB).
    pub max_content_bytes: usize,
    /// Items read and written per statement when recalculating scores.
    pub score_batch_size: i64,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            token_limit: 180_000,
            flash_save_threshold: 0.8,
            max_content_bytes: 1 << 20,
            score_batch_size: 5_000,
        }
    }
}

impl ContextConfig {
    /// Active tokens at or above which a flash save is due: 144,000 with the defaults.
    pub fn flash_save_tokens(&self) -> i64 {
        // The reference computes int(0.8 × 180,000); rounding down matches it.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let t = (self.token_limit as f64 * self.flash_save_threshold).floor() as i64;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threshold_is_the_references_144k() {
        assert_eq!(ContextConfig::default().flash_save_tokens(), 144_000);
        let c = ContextConfig { token_limit: 1000, flash_save_threshold: 0.5, ..Default::default() };
        assert_eq!(c.flash_save_tokens(), 500);
    }
}
