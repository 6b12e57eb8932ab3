//! A target-and-level filter that decides most targets without reading its directives.
//!
//! tracing-subscriber's `Targets` matches a target against every directive, by prefix, on every
//! call: for the span filter (INFO, and the plumbing's targets off) that is over a hundred
//! instructions per span. A directive can only match a target that starts with the directive's
//! first byte, so a table of those bytes sends every other target straight to the default level,
//! and the rest to `Targets` itself: the answer is always `Targets`'.

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};

#[derive(Debug, Clone)]
pub(crate) struct Directives {
    targets: Targets,
    /// Whether some directive's target starts with this byte.
    firsts: [bool; 256],
    default: LevelFilter,
}

impl Directives {
    pub(crate) fn new(targets: Targets) -> Directives {
        let mut firsts = [false; 256];
        for (target, _) in targets.iter() {
            match target.as_bytes().first() {
                Some(first) => firsts[usize::from(*first)] = true,
                // A directive for the empty target matches every target: no shortcut.
                None => firsts = [true; 256],
            }
        }
        let default = targets.default_level().unwrap_or(LevelFilter::OFF);
        Directives {
            targets,
            firsts,
            default,
        }
    }

    pub(crate) fn would_enable(&self, target: &str, level: &Level) -> bool {
        match target.as_bytes().first() {
            Some(first) if !self.firsts[usize::from(*first)] => *level <= self.default,
            _ => self.targets.would_enable(target, level),
        }
    }

    pub(crate) fn max_level_hint(&self) -> Option<LevelFilter> {
        tracing_subscriber::layer::Filter::<tracing_subscriber::Registry>::max_level_hint(
            &self.targets,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn level() -> impl Strategy<Value = Level> {
        prop_oneof![
            Just(Level::TRACE),
            Just(Level::DEBUG),
            Just(Level::INFO),
            Just(Level::WARN),
            Just(Level::ERROR),
        ]
    }

    fn filter() -> impl Strategy<Value = LevelFilter> {
        prop_oneof![
            Just(LevelFilter::OFF),
            Just(LevelFilter::ERROR),
            Just(LevelFilter::INFO),
            Just(LevelFilter::TRACE),
        ]
    }

    proptest! {
        #[test]
        fn every_answer_is_the_targets_answer(
            default in proptest::option::of(filter()),
            directives in proptest::collection::vec(("[a-d_:]{1,6}", filter()), 0..6),
            target in "[a-e_:]{0,8}",
            level in level(),
        ) {
            let mut targets = Targets::new();
            if let Some(default) = default {
                targets = targets.with_default(default);
            }
            for (target, filter) in &directives {
                targets = targets.with_target(target.clone(), *filter);
            }
            let directives = Directives::new(targets.clone());
            prop_assert_eq!(
                directives.would_enable(&target, &level),
                targets.would_enable(&target, &level)
            );
        }
    }

    #[test]
    fn the_span_filter_is_answered_as_targets_answers_it() {
        let targets = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("hyper", LevelFilter::OFF)
            .with_target("aws_smithy_runtime", LevelFilter::OFF);
        let directives = Directives::new(targets);
        assert!(directives.would_enable("orders", &Level::INFO));
        assert!(!directives.would_enable("orders", &Level::DEBUG));
        assert!(!directives.would_enable("hyper::client", &Level::ERROR));
        assert!(
            directives.would_enable("hyperion", &Level::INFO)
                == Targets::new()
                    .with_default(LevelFilter::INFO)
                    .with_target("hyper", LevelFilter::OFF)
                    .would_enable("hyperion", &Level::INFO)
        );
        assert!(directives.would_enable("aws_sdk_s3", &Level::INFO));
    }
}
