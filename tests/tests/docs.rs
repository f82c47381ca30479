//! The documentation says what the code does: the configuration table lists exactly the
//! variables `Config` reads, each with its default.

use std::collections::BTreeMap;
use std::path::Path;

use chat_core::config::VARIABLES;

/// `(variable, documented default)` for each row of the table in docs/configuration.md; a row
/// may name several variables that share a default.
fn documented() -> BTreeMap<String, Option<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (names, default) = (cells[1], cells[2]);
        let default = default
            .strip_prefix('`')
            .and_then(|d| d.split('`').next())
            .map(str::to_owned);
        for name in names.split(',').map(|n| n.trim().trim_matches('`')) {
            assert!(
                rows.insert(name.to_owned(), default.clone()).is_none(),
                "{name} is documented twice"
            );
        }
    }
    rows
}

#[test]
fn the_configuration_table_lists_every_variable_config_reads_with_its_default() {
    let documented = documented();
    let read: BTreeMap<String, Option<String>> = VARIABLES
        .iter()
        .map(|v| (v.name.to_owned(), v.default.map(str::to_owned)))
        .collect();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        read.keys().collect::<Vec<_>>(),
        "docs/configuration.md and Config::VARIABLES name different variables"
    );
    for (name, default) in &read {
        assert_eq!(
            &documented[name], default,
            "{name}: documented default differs from Config's"
        );
    }
}

#[test]
fn docs_compat_lists_every_behaviour_kept_for_the_original_app() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compat.md");
    let text = std::fs::read_to_string(&path).expect("docs/compat.md");
    let documented: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let kept: Vec<&str> = chat_core::compat::KEPT.iter().map(|k| k.name).collect();
    assert_eq!(
        documented, kept,
        "docs/compat.md and chat_core::compat::KEPT list different behaviours"
    );
}
