//! Scenario (k), two nodes: (a) against two hookd nodes sharing one PostgreSQL database,
//! the driver's connections spread over both, next to (a) against one node on a database
//! of its own. Needs `--database-url`.

use crate::hookd::Hookd;
use crate::measure::{measure, prepare};
use crate::prefill::Bed;
use crate::report::{Figure, Run};
use crate::scenario::grown_spec;
use crate::{Args, procfs};

pub async fn execute(args: &Args, binary: Option<&std::path::Path>) -> anyhow::Result<Vec<Run>> {
    anyhow::ensure!(
        args.database_url.is_some(),
        "scenario k runs hookd nodes on PostgreSQL: give --database-url"
    );
    let mut runs = Vec::new();
    for nodes in [1, 2] {
        let plural = if nodes == 1 { "" } else { "s" };
        let context = format!(", {nodes} node{plural} on one PostgreSQL database");
        let spec = grown_spec("a", args, &format!("k-{nodes}"), &context)?;
        eprintln!("running {} ({})", spec.name, spec.description);
        let mut bed = Bed::start(args, binary, &spec.name.replace('-', "_"), "5,300").await?;
        while bed.nodes.len() < nodes {
            bed.start_node().await?;
        }
        let target = prepare(args, &spec, bed.hookd()).await?;
        let on: Vec<&Hookd> = bed.nodes.iter().collect();
        let mut run = measure(args, &spec, &on, true, target).await?;
        run.figures = vec![
            Figure::new("nodes", nodes as f64, "nodes"),
            Figure::new("delivered per second", run.delivered_per_s, "deliveries/s"),
        ];
        // The common columns show the first node's memory; the second's is here.
        if let Some(rss) = on
            .get(1)
            .and_then(|n| n.pid)
            .and_then(|p| procfs::memory_mib(p, "VmHWM"))
        {
            run.figures
                .push(Figure::new("second node's peak RSS", rss, "MiB"));
        }
        runs.push(run);
    }
    if let [one, two] = &mut runs[..] {
        let ratio = two.delivered_per_s / one.delivered_per_s.max(1e-9);
        two.figures
            .push(Figure::new("delivered/s against one node", ratio, "x"));
    }
    Ok(runs)
}
