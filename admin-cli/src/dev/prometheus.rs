//! `DIR/prometheus.yml`: a Prometheus scrape config for the dev cluster,
//! so `prometheus --config.file DIR/prometheus.yml` scrapes every node.
//! One job per tier (`hamster-meta`, `hamster-blob`, `hamster-gateway`);
//! one static config per node, labelled `node: NAME`, so a series says
//! which node it came from even after the address changes.

use std::path::Path;

use anyhow::Context;

/// The file's name in a dev dir.
pub const FILE: &str = "prometheus.yml";

/// A node to scrape: its name and its `--metrics-listen` address.
pub struct Target<'a> {
    pub node: &'a str,
    pub addr: &'a str,
}

/// The scrape config: `jobs` is (job name, its targets), in order.
pub fn render(jobs: &[(&str, Vec<Target<'_>>)]) -> String {
    let mut y = String::from(
        "# Written by `hamster dev` at every start; edits are overwritten.\n\
         # prometheus --config.file THIS_FILE\n\
         global:\n  scrape_interval: 15s\n\nscrape_configs:\n",
    );
    for (job, targets) in jobs {
        y += &format!("  - job_name: {}\n    static_configs:\n", quote(job));
        for t in targets {
            y += &format!(
                "      - targets: [{}]\n        labels: {{node: {}}}\n",
                quote(t.addr),
                quote(t.node)
            );
        }
    }
    y
}

/// A YAML double-quoted scalar: names and addresses are plain ASCII, but
/// quoting keeps `:` in an address from reading as a mapping.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes `dir/prometheus.yml` whole (old or new file, never a mix).
pub fn write(dir: &Path, jobs: &[(&str, Vec<Target<'_>>)]) -> anyhow::Result<()> {
    let path = dir.join(FILE);
    hamster_proto::trust_sync::replace_file(&path, render(jobs).as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_is_a_labelled_target_in_its_tiers_job() {
        let jobs = [
            (
                "hamster-meta",
                vec![
                    Target {
                        node: "meta-1",
                        addr: "127.0.0.1:7701",
                    },
                    Target {
                        node: "meta-2",
                        addr: "127.0.0.1:7702",
                    },
                ],
            ),
            (
                "hamster-gateway",
                vec![Target {
                    node: "gateway-1",
                    addr: "127.0.0.1:7901",
                }],
            ),
        ];
        let y = render(&jobs);
        assert!(
            y.contains("\nscrape_configs:\n  - job_name: \"hamster-meta\"\n"),
            "{y}"
        );
        assert!(
            y.contains(
                "      - targets: [\"127.0.0.1:7702\"]\n        labels: {node: \"meta-2\"}\n"
            ),
            "{y}"
        );
        assert!(y.contains("  - job_name: \"hamster-gateway\"\n"), "{y}");
        // Indentation is YAML's structure: no tab may sneak in.
        assert!(!y.contains('\t'));
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), &jobs).expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).expect("read"),
            y
        );
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
