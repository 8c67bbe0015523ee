//! Crash anywhere: `phoenix up` / `phoenix down` of the AWS web stack, killed
//! with SIGKILL at a seeded point, then run again to completion; afterwards the
//! environment matches the definition, nothing is duplicated or orphaned, and
//! the state is valid with a higher serial (after a complete `down`: gone).
//!
//! The kill points are API requests: a fault proxy in front of moto counts
//! them, and kills `phoenix` right after moto executed the chosen request and
//! before `phoenix` hears the answer — the worst moment for a create. A
//! baseline run first measures how many requests an `up` and a `down` make,
//! so the seeds spread over the whole run whatever the code does.
//!
//! Seeds: `PHOENIX_CRASH_SEEDS=N` runs seeds 1..=N (default 20),
//! `PHOENIX_CRASH_SEED=S` runs just seed S. A failure names its seed.

mod support;

use phoenix_testkit::Moto;
use phoenix_testkit::fault_proxy::{FaultPlan, FaultProxy};
use support::Project;
use support::aws_stack::{Stack, client, serial, state_doc};

/// SplitMix64 of the seed: the kill point of a seed is the same on every machine.
fn draw(seed: u64, salt: u64) -> u64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("PHOENIX_CRASH_SEED") {
        return vec![s.parse().expect("PHOENIX_CRASH_SEED is a number")];
    }
    let n: u64 = std::env::var("PHOENIX_CRASH_SEEDS").ok().map(|s| s.parse().expect("PHOENIX_CRASH_SEEDS is a number")).unwrap_or(20);
    (1..=n).collect()
}

/// One seed: odd seeds crash an `up` from nothing; even seeds bring the stack
/// up, then crash its `down`. Returns the kill point used, or what went wrong.
async fn one_seed(stack: &Stack, proxy: &FaultProxy, seed: u64, up_requests: u64, down_requests: u64) -> Result<String, String> {
    let project = Project::repo();
    let inst = format!("s{seed}");
    let crash_down = seed % 2 == 0;
    if crash_down {
        let (up, _) = stack.run(&project, proxy, &inst, &["up", "staging"], None);
        if up.code != 0 {
            return Err(format!("the setup up failed:\n{}\n{}", up.stdout, up.stderr));
        }
    }
    let (command, range) = if crash_down { ("down", down_requests) } else { ("up", up_requests) };
    let kill_at = 1 + draw(seed, 1) % range.max(1);
    let serial_before = serial(&project);
    let (first, killed) = stack.run(&project, proxy, &inst, &[command, "staging"], Some(kill_at));
    if !killed {
        return Err(format!("{command} was not killed at request {kill_at} (exit {}):\n{}", first.code, first.stderr));
    }
    let (rerun, _) = stack.run(&project, proxy, &inst, &[command, "staging"], None);
    if rerun.code != 0 {
        return Err(format!("the rerun of {command} after a kill at request {kill_at} failed:\n{}\n{}", rerun.stdout, rerun.stderr));
    }
    // A complete down leaves no state at all; an up leaves a newer one.
    let serial_after = serial(&project);
    if crash_down {
        if state_doc(&project).is_some() {
            return Err("the rerun down left its state behind".to_string());
        }
    } else if serial_after <= serial_before {
        return Err(format!("state serial did not increase: {serial_before} -> {serial_after}"));
    }
    if crash_down { stack.check_down(&project, &inst).await } else { stack.check_up(&project, proxy, &inst).await }
        .map_err(|e| format!("{command} killed at request {kill_at}: {e}"))?;
    Ok(format!("{command} killed at request {kill_at}/{range}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_seeded_points_of_up_and_down_then_rerun_converges() {
    let moto = Moto::start();
    let ec2 = client(&moto);
    let stack = Stack { moto, ec2 };
    let proxy = FaultProxy::start(stack.moto.port, FaultPlan::none());

    // Baseline: an uninterrupted up and down, measuring their request counts.
    let base = Project::repo();
    let (up, _) = stack.run(&base, &proxy, "base", &["up", "staging"], None);
    assert_eq!(up.code, 0, "baseline up:\n{}\n{}", up.stdout, up.stderr);
    let up_requests = proxy.counts().requests;
    stack.check_up(&base, &proxy, "base").await.unwrap();
    let (down, _) = stack.run(&base, &proxy, "base", &["down", "staging"], None);
    assert_eq!(down.code, 0, "baseline down:\n{}\n{}", down.stdout, down.stderr);
    let down_requests = proxy.counts().requests;
    stack.check_down(&base, "base").await.unwrap();
    eprintln!("crash_anywhere: a full up makes {up_requests} API requests, a down {down_requests}");

    let mut failures = Vec::new();
    let seeds = seeds();
    for &seed in &seeds {
        match one_seed(&stack, &proxy, seed, up_requests, down_requests).await {
            Ok(what) => eprintln!("crash_anywhere: seed {seed}: {what}: converged"),
            Err(e) => {
                eprintln!("crash_anywhere: seed {seed} FAILED (rerun with PHOENIX_CRASH_SEED={seed}): {e}");
                failures.push(seed);
            }
        }
    }
    eprintln!("crash_anywhere: {} of {} seeds converged", seeds.len() - failures.len(), seeds.len());
    assert!(failures.is_empty(), "seeds that did not converge: {failures:?} (rerun one with PHOENIX_CRASH_SEED=<seed>)");
}
