//! Convergence under API faults: `phoenix up` and `down` of the AWS web stack
//! through a fault proxy in front of moto. Transient failures and lost answers
//! are survived with exactly the declared objects; permanent errors fail at
//! once, with AWS's message, without a retry storm.

mod support;

use phoenix_testkit::Moto;
use phoenix_testkit::fault_proxy::{ErrorRule, FaultCounts, FaultPlan, FaultProxy};
use support::Project;
use support::aws_stack::{Stack, client};

fn stack() -> Stack {
    let moto = Moto::start();
    let ec2 = client(&moto);
    Stack { moto, ec2 }
}

/// `up`, a clean plan, `down`, all under `plan`; returns the proxy's counts
/// of the `up` and of the `down`.
async fn up_and_down_under(plan: FaultPlan, inst: &str) -> (FaultCounts, FaultCounts) {
    let stack = stack();
    let proxy = FaultProxy::start(stack.moto.port, plan);
    let project = Project::repo();
    let (up, _) = stack.run(&project, &proxy, inst, &["up", "staging"], None);
    let up_counts = proxy.counts();
    assert_eq!(up.code, 0, "up under faults failed ({up_counts:?}):\n{}\n{}", up.stdout, up.stderr);
    stack.check_up(&project, &proxy, inst).await.unwrap_or_else(|e| panic!("{e} ({up_counts:?})"));
    let (down, _) = stack.run(&project, &proxy, inst, &["down", "staging"], None);
    let down_counts = proxy.counts();
    assert_eq!(down.code, 0, "down under faults failed ({down_counts:?}):\n{}\n{}", down.stdout, down.stderr);
    stack.check_down(&project, inst).await.unwrap_or_else(|e| panic!("{e} ({down_counts:?})"));
    eprintln!("faults: {inst}: up {up_counts:?}\nfaults: {inst}: down {down_counts:?}");
    (up_counts, down_counts)
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_converge_with_ten_percent_of_calls_failing_transiently() {
    let (up, down) = up_and_down_under(FaultPlan::transient(9, 0.10), "transient").await;
    for c in [&up, &down] {
        assert!(c.transient_faults() > 0, "faults were injected: {c:?}");
    }
    assert!(up.throttled + down.throttled > 0 && up.server_errors + down.server_errors + up.resets + down.resets > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_converge_when_answers_are_lost_after_the_call_ran() {
    // Seed 8 loses answers early in the up and throughout the down.
    let (up, down) = up_and_down_under(FaultPlan::dropped_responses(8, 0.10), "dropped").await;
    assert!(up.dropped_responses > 0 && down.dropped_responses > 0, "answers were dropped: {up:?} {down:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_create_losing_its_first_answer_makes_no_duplicate() {
    let lost = [
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "CreateRouteTable",
        "CreateSecurityGroup",
        "RunInstances",
        "CreateVolume",
        "AllocateAddress",
        "AttachVolume",
        "AssociateAddress",
        "AttachInternetGateway",
        "ModifyVpcAttribute",
        "AuthorizeSecurityGroupIngress",
    ];
    let mut plan = FaultPlan::none();
    for c in lost {
        plan = plan.with_drop_first(c);
    }
    let (up, _) = up_and_down_under(plan, "lost").await;
    assert_eq!(up.dropped_responses, lost.len() as u64, "{up:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn permission_denied_fails_fast_with_the_aws_message() {
    let stack = stack();
    let rule = ErrorRule::new("CreateVpc", 403, "UnauthorizedOperation", "You are not authorized to perform this operation.");
    let proxy = FaultProxy::start(stack.moto.port, FaultPlan::none().with_rule(rule));
    let project = Project::repo();
    let (up, _) = stack.run(&project, &proxy, "denied", &["up", "staging"], None);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    let all = format!("{}{}", up.stdout, up.stderr);
    assert!(all.contains("UnauthorizedOperation") && all.contains("You are not authorized"), "{all}");
    // Typed from AWS's code to the printer: the kind's hint, not a guess from the text.
    assert!(all.contains("hint: the credentials in use lack a permission this call needs"), "{all}");
    let counts = proxy.counts();
    assert_eq!(counts.action("CreateVpc"), 1, "a permanent error is not retried: {counts:?}");
    // Nothing depends on nothing: everything else was skipped, not attempted.
    assert_eq!(counts.action("CreateSubnet") + counts.action("RunInstances"), 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_ami_fails_fast_with_the_aws_message() {
    let stack = stack();
    let rule = ErrorRule::new("RunInstances", 400, "InvalidAMIID.NotFound", "The image id '[ami-0bad]' does not exist");
    let proxy = FaultProxy::start(stack.moto.port, FaultPlan::none().with_rule(rule));
    let project = Project::repo();
    let (up, _) = stack.run(&project, &proxy, "badami", &["up", "staging"], None);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    let all = format!("{}{}", up.stdout, up.stderr);
    assert!(all.contains("InvalidAMIID.NotFound") && all.contains("does not exist"), "{all}");
    let counts = proxy.counts();
    assert_eq!(counts.action("RunInstances"), 1, "a permanent error is not retried: {counts:?}");
    // The rest of the stack was made, and the failed instance left nothing to adopt.
    let rerun_plan = stack.run_plan(&project, &proxy, "badami").0;
    assert_eq!(rerun_plan.code, 2, "the instance is still to create: {}", rerun_plan.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_error_from_many_resources_is_said_once_with_a_count() {
    let stack = stack();
    let rule = ErrorRule::new("CreateSubnet", 403, "UnauthorizedOperation", "You are not authorized to perform this operation.");
    let proxy = FaultProxy::start(stack.moto.port, FaultPlan::none().with_rule(rule));
    let project = Project::repo();
    let (up, _) = stack.run(&project, &proxy, "denied3", &["up", "staging"], None);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(proxy.counts().action("CreateSubnet"), 3, "each of the three subnets was tried");
    let summary = up.stdout.split("Apply failed:").nth(1).unwrap_or_else(|| panic!("no summary: {}", up.stdout));
    assert_eq!(summary.matches("You are not authorized").count(), 1, "{summary}");
    assert!(summary.contains("3 resources (subnet-0 (create), subnet-1 (create), subnet-2 (create))"), "{summary}");
}
