//! Include / exclude filters for tree transfers (a directory upload, a prefix download), read as the AWS CLI
//! reads `--exclude` and `--include`: each pattern is a glob matched against the file's `/`-separated path
//! relative to the walked directory or listed prefix, where `*` and `?` also match `/` (so `*.tmp` matches at any
//! depth and `.git/*` everything under `.git`); `[abc]`, `[!a-z]`, `{a,b}` and `**` work as usual. Rules apply in
//! order and the last one that matches a path decides; a path no rule matches is taken unless the filter says
//! otherwise. Patterns are case-sensitive on every platform, as keys are.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::error::{Error, Result};

/// One rule: take (`include`) or leave out (`!include`) the paths `pattern` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRule {
  /// `true` for an include, `false` for an exclude.
  pub include: bool,
  /// The glob.
  pub pattern: String,
}

/// A compiled filter: rules in order, last match wins.
#[derive(Debug, Clone)]
pub struct Filter {
  set: GlobSet,
  include: Vec<bool>,
  take_unmatched: bool,
}

impl Filter {
  /// Rules in the order given (the command line's): the last matching rule decides, an unmatched path is taken.
  pub fn ordered(rules: Vec<FilterRule>) -> Result<Filter> {
    Filter::build(rules, true)
  }

  /// The library's `{ include, exclude }`: a path is taken when it matches no `exclude` pattern and, if any
  /// `include` patterns are given, matches one of them.
  pub fn sets(include: Vec<String>, exclude: Vec<String>) -> Result<Filter> {
    let take_unmatched = include.is_empty();
    // Includes only let a path through when no exclude matches it, so they go first (the last match wins).
    let rules = include
      .into_iter()
      .map(|pattern| FilterRule { include: true, pattern })
      .chain(exclude.into_iter().map(|pattern| FilterRule {
        include: false,
        pattern,
      }))
      .collect();
    Filter::build(rules, take_unmatched)
  }

  fn build(rules: Vec<FilterRule>, take_unmatched: bool) -> Result<Filter> {
    let mut set = GlobSetBuilder::new();
    let mut include = Vec::with_capacity(rules.len());
    for rule in rules {
      let what = if rule.include { "include" } else { "exclude" };
      if rule.pattern.is_empty() {
        return Err(Error::invalid_value(format!("an {what} pattern must not be empty")));
      }
      // Windows users write `cache\*`: there a backslash is a separator, as in their paths; elsewhere it escapes.
      let pattern = match cfg!(windows) {
        true => rule.pattern.replace('\\', "/"),
        false => rule.pattern.clone(),
      };
      let glob = GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(false)
        .backslash_escape(!cfg!(windows))
        .empty_alternates(true)
        .build()
        .map_err(|e| {
          Error::invalid_value(format!(
            "the {what} pattern '{}' is not a valid glob: {}",
            rule.pattern,
            e.kind()
          ))
        })?;
      set.add(glob);
      include.push(rule.include);
    }
    let set = set
      .build()
      .map_err(|e| Error::invalid_value(format!("the filter patterns could not be compiled: {e}")))?;
    Ok(Filter {
      set,
      include,
      take_unmatched,
    })
  }

  /// Whether the file at `relative` (`/`-separated, relative to the tree's root) is transferred.
  pub fn takes(&self, relative: &str) -> bool {
    match self.set.matches(relative).into_iter().max() {
      Some(last) => self.include[last],
      None => self.take_unmatched,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn rule(include: bool, pattern: &str) -> FilterRule {
    FilterRule {
      include,
      pattern: pattern.into(),
    }
  }

  #[test]
  fn the_last_matching_rule_decides_as_in_the_aws_cli() {
    // aws s3 cp --recursive --exclude "*" --include "*.png" --exclude "tmp/*"
    let f = Filter::ordered(vec![rule(false, "*"), rule(true, "*.png"), rule(false, "tmp/*")]).unwrap();
    assert!(f.takes("a.png"));
    assert!(f.takes("tex/deep/b.png"), "* crosses '/'");
    assert!(!f.takes("scene.blend"));
    assert!(!f.takes("tmp/c.png"));
    // Reversed order: the later include wins over the earlier exclude.
    let f = Filter::ordered(vec![rule(false, "tmp/*"), rule(true, "tmp/keep.txt")]).unwrap();
    assert!(f.takes("tmp/keep.txt"));
    assert!(!f.takes("tmp/other.txt"));
    assert!(f.takes("scene.blend"), "a path no rule matches is taken");
    // An include alone changes nothing on the command line (everything is included already).
    assert!(Filter::ordered(vec![rule(true, "*.png")]).unwrap().takes("a.txt"));
  }

  #[test]
  fn job_folder_clutter_is_left_out() {
    let f = Filter::ordered(vec![
      rule(false, ".git/*"),
      rule(false, "*.tmp"),
      rule(false, "**/__pycache__/**"),
    ])
    .unwrap();
    assert!(!f.takes(".git/objects/ab/cdef"));
    assert!(!f.takes("renders/frame.tmp"));
    assert!(!f.takes("tools/__pycache__/x.pyc"));
    assert!(f.takes("scene.blend"));
    assert!(
      f.takes("a.git/x"),
      "'.git/*' names the folder at the root, not names ending in .git"
    );
    assert!(f.takes("./x".trim_start_matches("./")));
    let f = Filter::ordered(vec![rule(false, "./cache/*")]).unwrap();
    assert!(!f.takes("cache/x"), "a leading ./ names the tree's root");
  }

  #[test]
  fn the_library_sets_take_includes_minus_excludes() {
    let f = Filter::sets(vec!["*.png".into(), "*.exr".into()], vec!["tmp/*".into()]).unwrap();
    assert!(f.takes("a.png") && f.takes("x/b.exr"));
    assert!(!f.takes("a.txt"), "with includes given, other paths are left out");
    assert!(!f.takes("tmp/a.png"), "an exclude wins over an include");
    let f = Filter::sets(vec![], vec!["*.tmp".into()]).unwrap();
    assert!(f.takes("a.txt") && !f.takes("a.tmp"));
  }

  #[test]
  fn classes_alternates_and_case() {
    let f = Filter::ordered(vec![rule(false, "*.{tmp,bak}"), rule(false, "frame_[0-4].exr")]).unwrap();
    assert!(!f.takes("a.bak") && !f.takes("frame_3.exr"));
    assert!(f.takes("frame_7.exr"));
    assert!(f.takes("A.TMP"), "patterns are case-sensitive, as keys are");
  }

  #[test]
  fn bad_patterns_are_coded_errors() {
    let e = Filter::ordered(vec![rule(false, "[a-")]).unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    assert!(e.to_string().contains("'[a-'"), "{e}");
    let e = Filter::sets(vec!["".into()], vec![]).unwrap_err();
    assert!(e.to_string().contains("include pattern must not be empty"), "{e}");
  }
}
