//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  phoenix up dev                      bring the dev environment up (plan, confirm, apply)
  phoenix plan prod --var web_count=6 show what would change, without changing anything
  phoenix up ci --instance pr-1234 --yes --json
  phoenix down dev --yes              destroy everything the dev environment made

Exit codes:
  0  success (with --detailed-exitcode: no changes)
  1  an error: a provider call failed, state could not be written
  2  changes are present (plan --detailed-exitcode)
  3  the environment definition is invalid (nothing was called or changed)
  4  the state is locked by another run
  64 bad usage: an unknown subcommand or flag, a malformed --var, an unknown
     environment or --target/--exclude/--replace address (nothing was changed)
  130 interrupted (Ctrl-C); state was saved";

/// Phoenix: provision environments that rise again from the ashes.
#[derive(Debug, Parser)]
#[command(name = "phoenix", version, about, long_about = None, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Machine-readable output: JSON documents, or one JSON event per line for `up`/`down`.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Run as if started in DIR (the project holding environments/ and templates/).
    #[arg(short = 'C', long = "chdir", global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Never use colour (also: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Plans on one line per attribute, long values shortened (default: in full, multi-line values as diffs).
    #[arg(long, global = true)]
    pub compact: bool,
}

/// Which environment, which copy of it, and with which variables.
#[derive(Debug, Args, Clone)]
pub struct EnvArgs {
    /// Environment name (environments/NAME.toml) or path to an environment file.
    pub env: String,
    /// Set a variable declared under [vars]: --var web_count=6 (repeatable; applied after every --var-file).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Read variables from a TOML file of `name = value` lines (repeatable; later files win, --var wins over all).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// An isolated copy of the environment with its own state, names and tags.
    #[arg(long, value_name = "NAME", value_parser = parse_instance)]
    pub instance: Option<String>,
}

impl EnvArgs {
    /// An environment (and instance) with its declared variables as they are.
    pub fn named(env: impl Into<String>, instance: Option<String>) -> Self {
        Self { env: env.into(), vars: Vec::new(), var_files: Vec::new(), instance }
    }

    /// How phoenix-config loads it: variables from files, then `--var`, then the instance.
    pub fn load_options(&self) -> phoenix_config::LoadOptions {
        phoenix_config::LoadOptions { vars: self.vars.clone(), var_files: self.var_files.clone(), instance: self.instance.clone() }
    }
}

impl Scope {
    /// The engine's scope of a plan.
    pub fn engine(&self) -> phoenix_engine::plan::Scope {
        phoenix_engine::plan::Scope {
            targets: self.targets.clone(),
            excludes: self.excludes.clone(),
            replace: self.replace.clone(),
            allow_empty: self.allow_empty,
        }
    }
}

/// Which resources a plan may touch, and which it must replace.
#[derive(Debug, Args, Clone, Default)]
pub struct Scope {
    /// Limit the change to these resources and what they need (repeatable).
    #[arg(long = "target", value_name = "RESOURCE")]
    pub targets: Vec<String>,
    /// Leave these resources and everything that needs them unchanged (repeatable; the opposite of --target).
    #[arg(long = "exclude", value_name = "RESOURCE")]
    pub excludes: Vec<String>,
    /// Replace this resource even though its definition did not change (repeatable), e.g. a broken server.
    #[arg(long = "replace", value_name = "RESOURCE")]
    pub replace: Vec<String>,
    /// Accept a definition that renders no resources although state holds some (it destroys them all).
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LockArgs {
    /// Wait up to this long for another run's lock (e.g. 30s, 5m) instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub lock_timeout: std::time::Duration,
}

#[derive(Debug, Args, Clone)]
pub struct ApplyArgs {
    /// Skip the confirmation prompt (required when stdin is not a terminal).
    #[arg(short = 'y', long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub parallelism: u32,
    #[command(flatten)]
    pub scope: Scope,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render, parse and type-check an environment: no API calls, nothing written.
    #[command(after_help = "Examples:\n  phoenix validate dev\n  phoenix validate prod --var web_count=0 --json")]
    Validate {
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Print the rendered definition (the TOML the templates produce).
    #[command(after_help = "Examples:\n  phoenix render staging --var web_count=2")]
    Render {
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Refresh state and show what `up` would change.
    #[command(
        after_help = "Examples:\n  phoenix plan dev\n  phoenix plan prod --out prod.plan && phoenix up prod --plan prod.plan\n  phoenix plan ci --detailed-exitcode   # exit 0: no changes, 2: changes, 1: error\n  phoenix plan prod --var-file prod-big.toml --var web_count=8\n  phoenix plan dev --replace web-0       # rebuild one server\n  phoenix plan dev --exclude db          # everything but db and what needs it"
    )]
    Plan {
        #[command(flatten)]
        env: EnvArgs,
        /// Plan the destruction of everything instead.
        #[arg(long)]
        destroy: bool,
        /// Save the plan; `phoenix up ENV --plan FILE` applies exactly it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes and 2 when there are.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Plan, confirm and apply: create, update and replace along the dependency graph, in parallel.
    #[command(
        visible_alias = "apply",
        after_help = "Examples:\n  phoenix up dev\n  phoenix apply dev                          # the same\n  phoenix up prod --var web_count=6 --parallelism 32\n  phoenix up prod --var-file prod.vars.toml\n  phoenix up ci --instance pr-1234 --yes --json\n  phoenix up prod --plan prod.plan\n  phoenix up dev --replace web-0 --exclude db"
    )]
    Up {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Apply a plan saved by `phoenix plan --out`; refused if state changed since.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Mark the instance for `phoenix gc` after this long (e.g. 2h): stored in state and tagged on every object.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// After a successful run, write the outputs to FILE for the next CI step
        /// (JSON if it ends in `.json`, else dotenv). Sensitive outputs are left out.
        #[arg(long, value_name = "FILE")]
        outputs_file: Option<PathBuf>,
        /// Rebuild from a recovery point instead (the same as `phoenix restore ENV --from ID`).
        #[arg(long, value_name = "ID", conflicts_with_all = ["plan", "ttl"])]
        from_snapshot: Option<String>,
    },
    /// Take a recovery point: snapshot every stateful object (volumes,
    /// databases) in parallel and keep the definition to rebuild from.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  phoenix snapshot prod\n  phoenix snapshot prod --copy-to-region us-east-2 --keep 7\n  phoenix snapshot list prod\n  phoenix snapshot show prod rp-20261124-020500-1a2b\n  phoenix snapshot delete prod rp-20261124-020500-1a2b\n  phoenix snapshot prod --var-file prod.vars.toml --strict   # refuse if the definition differs from state"
    )]
    Snapshot {
        #[command(subcommand)]
        command: Option<SnapshotCommand>,
        #[command(flatten)]
        take: TakeArgs,
    },
    /// Rebuild an environment from a recovery point: everything that is missing
    /// is created, stateful objects from their snapshots; what exists is kept.
    #[command(
        after_help = "Examples:\n  phoenix restore prod --from rp-20261124-020500-1a2b\n  phoenix restore prod --from rp-20261124-020500-1a2b --region us-east-2\n  phoenix restore gcp-staging --from rp-… --region europe-west1 --zone europe-west1-b --instance drill-1\n  phoenix restore prod --from rp-20261124-020500-1a2b --instance drill-1 --yes   # a restore drill beside prod\n  phoenix down prod --instance drill-1 --yes"
    )]
    Restore {
        #[command(flatten)]
        env: EnvArgs,
        /// The recovery point (see `phoenix snapshot list ENV`).
        #[arg(long = "from", value_name = "ID")]
        from: String,
        /// Restore into this region, from the snapshots copied there (`phoenix snapshot --copy-to-region`).
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// With --region, for GCP objects: the zone (of REGION) they are made in.
        #[arg(long, value_name = "ZONE", requires = "region")]
        zone: Option<String>,
        #[command(flatten)]
        apply: ApplyArgs,
    },
    /// Destroy everything the environment made, in reverse dependency order.
    #[command(
        visible_alias = "destroy",
        after_help = "Examples:\n  phoenix down dev\n  phoenix destroy dev                        # the same\n  phoenix down ci --instance pr-1234 --yes\n  phoenix down dev --exclude db              # keep db and what it needs\n  phoenix down dev --keep-history            # keep .phoenix/state/dev/history/"
    )]
    Down {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Keep the local state directory (its history of state versions) once everything is destroyed.
        #[arg(long)]
        keep_history: bool,
    },
    /// Read every object in state as it is now and record that in state: shows
    /// what drifted or disappeared; creates, changes and deletes nothing.
    #[command(after_help = "Examples:\n  phoenix refresh prod\n  phoenix refresh ci --instance pr-1234 --json")]
    Refresh {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Print a plan saved by `phoenix plan --out` (with --json: as JSON, sensitive values sealed).
    #[command(
        after_help = "Examples:\n  phoenix plan prod --out prod.plan && phoenix show prod.plan\n  phoenix --json show prod.plan | jq '.changes[].addr'"
    )]
    Show {
        /// The plan file.
        #[arg(value_name = "PLANFILE")]
        plan: PathBuf,
    },
    /// Show what exists according to state (with --refresh: as it is now).
    #[command(after_help = "Examples:\n  phoenix status dev\n  phoenix status dev --refresh --json")]
    Status {
        #[command(flatten)]
        env: EnvArgs,
        /// Read every object through its provider first.
        #[arg(long)]
        refresh: bool,
    },
    /// Print the environment's outputs, or one of them (raw, for scripts).
    #[command(
        after_help = "Examples:\n  phoenix output dev\n  curl \"$(phoenix output dev url)\"\n  phoenix output ci --instance pr-1234 --format dotenv --out outputs.env"
    )]
    Output {
        #[command(flatten)]
        env: EnvArgs,
        /// Only this output, printed raw.
        name: Option<String>,
        /// Print (or write) all outputs as dotenv (`NAME='value'`) or one JSON object.
        #[arg(long, value_enum)]
        format: Option<OutputFormat>,
        /// Write to FILE (mode 0600) instead of stdout; sensitive outputs are left out.
        #[arg(long, value_name = "FILE", requires = "format")]
        out: Option<PathBuf>,
    },
    /// List the instances of an environment: age, expiry, resources, lock.
    #[command(after_help = "Examples:\n  phoenix instances ci\n  phoenix instances ci --json")]
    Instances {
        /// Environment name (environments/NAME.toml).
        env: String,
    },
    /// Destroy expired instances, then sweep the providers for objects Phoenix
    /// tagged that no state knows (leaks of killed runs).
    #[command(
        after_help = "Examples:\n  phoenix gc --dry-run            show what would be destroyed\n  phoenix gc ci --yes             for the ci environment only\n\nOnly objects carrying Phoenix's ownership tags of a scanned environment are ever touched;\nobjects of an instance whose lock is held (a run in progress) are left alone."
    )]
    Gc {
        /// Environments to collect (default: every file in environments/).
        envs: Vec<String>,
        /// Destroy without asking (required when stdin is not a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        /// Only show what would be destroyed.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Draw the dependency graph: Graphviz DOT, an SVG picture, or a Mermaid flowchart.
    #[command(
        after_help = "An arrow `a -> b` means `a` needs `b`. SVG is laid out by Phoenix itself (no Graphviz needed).\n\nExamples:\n  phoenix graph dev                          DOT on stdout\n  phoenix graph dev --format svg > dev.svg   a picture for a browser\n  phoenix graph dev --format mermaid         for a Markdown page (```mermaid)\n  phoenix graph prod --plan --format svg     coloured by what `phoenix plan` would do"
    )]
    Graph {
        #[command(flatten)]
        env: EnvArgs,
        /// What to draw: `dot` (Graphviz), `svg` or `mermaid`.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Refresh and plan (as `phoenix plan` does), then colour each resource by its
        /// planned action: create, update, replace, delete or no change.
        #[arg(long)]
        plan: bool,
    },
    /// Describe resource types from their schemas: attributes, types, defaults, force-new, sensitive.
    #[command(
        after_help = "Examples:\n  phoenix schema                          every type, by provider\n  phoenix schema metal.service            one type's attributes\n  phoenix schema aws --format json        one provider's types as JSON\n  phoenix schema --write docs/reference   regenerate the reference pages"
    )]
    Schema {
        /// A type (`metal.service`) or a provider (`aws`); default: all.
        #[arg(value_name = "TYPE")]
        name: Option<String>,
        /// Markdown (the default) or JSON (also: the global --json).
        #[arg(long, value_enum, default_value = "md")]
        format: SchemaFormat,
        /// Write the reference pages into DIR (README.md, then <provider>/README.md and <provider>/<type>.md) instead of printing.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["name", "format"])]
        write: Option<PathBuf>,
    },
    /// Inspect and repair state.
    #[command(subcommand)]
    State(StateCommand),
    /// Release a lock left by a run that died (shows who held it).
    #[command(
        after_help = "Examples:\n  phoenix unlock prod\n  phoenix unlock ci --instance pr-1234 --force   # S3: remove a lease that has not expired"
    )]
    Unlock {
        #[command(flatten)]
        env: EnvArgs,
        /// S3 state: remove the lock even though its lease has not expired
        /// (its holder, if alive, stops at its next renewal). A local kernel lock is never forced.
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  phoenix completions bash > ~/.local/share/bash-completion/completions/phoenix\n  phoenix completions zsh > \"${fpath[1]}/_phoenix\"\n  phoenix completions fish > ~/.config/fish/completions/phoenix.fish\n  phoenix completions powershell >> $PROFILE"
    )]
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print Phoenix's version and the providers and state backends built in.
    #[command(after_help = "Examples:\n  phoenix version\n  phoenix version --json")]
    Version,
    /// Bring an existing object under management: read it by id and record it
    /// as a declared resource (the next plan shows any difference from the definition).
    #[command(after_help = "Examples:\n  phoenix import staging vpc vpc-0a1b2c3d\n  phoenix import staging web-0 i-0123456789abcdef0")]
    Import {
        #[command(flatten)]
        env: EnvArgs,
        /// The declared resource to record it as.
        resource: String,
        /// The object's id at its provider.
        id: String,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// `phoenix snapshot ENV`: taking a recovery point.
#[derive(Debug, Args, Clone)]
pub struct TakeArgs {
    /// Environment name (environments/NAME.toml).
    #[arg(required = true)]
    pub env: Option<String>,
    /// Set a variable declared under [vars]: --var web_count=6 (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Read variables from a TOML file (repeatable; later files win, --var wins over all).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// The instance to snapshot.
    #[arg(long, value_name = "NAME", value_parser = parse_instance)]
    pub instance: Option<String>,
    /// Also copy every snapshot to this region (repeatable), for restores there.
    #[arg(long, value_name = "REGION")]
    pub copy_to_region: Vec<String>,
    /// Afterwards keep only the newest N recovery points, deleting older ones and their snapshots.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// Refuse (instead of warning) when the definition, with these variables, differs from what state holds.
    #[arg(long)]
    pub strict: bool,
    /// Snapshots taken at once.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallelism: u32,
    #[command(flatten)]
    pub lock: LockArgs,
}

impl TakeArgs {
    pub fn env_args(&self) -> EnvArgs {
        EnvArgs {
            env: self.env.clone().unwrap_or_default(),
            vars: self.vars.clone(),
            var_files: self.var_files.clone(),
            instance: self.instance.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List an environment's recovery points, oldest first.
    List {
        /// Environment name (environments/NAME.toml).
        env: String,
    },
    /// Show a recovery point: its snapshots, copies and state serial.
    Show {
        /// Environment name (environments/NAME.toml).
        env: String,
        /// The recovery point (see `phoenix snapshot list ENV`).
        id: String,
    },
    /// Delete a recovery point and its snapshots (and their copies): asks first, naming them.
    #[command(
        after_help = "Examples:\n  phoenix snapshot delete prod rp-20261124-020500-1a2b\n  phoenix snapshot delete prod rp-20261124-020500-1a2b --yes   # in scripts"
    )]
    Delete {
        /// Environment name (environments/NAME.toml).
        env: String,
        /// The recovery point (see `phoenix snapshot list ENV`).
        id: String,
        /// Delete without asking (required when stdin is not a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Dotenv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Svg,
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaFormat {
    Md,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the resources in state.
    #[command(after_help = "Examples:\n  phoenix state list dev")]
    List {
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Show one resource's state (sensitive values sealed).
    #[command(after_help = "Examples:\n  phoenix state show dev web")]
    Show {
        #[command(flatten)]
        env: EnvArgs,
        resource: String,
    },
    /// Rename a resource in state (after renaming it in the template), so it is not destroyed and created again.
    #[command(after_help = "Examples:\n  phoenix state mv dev web web-0\n  phoenix state mv prod db db-main --instance drill-1")]
    Mv {
        #[command(flatten)]
        env: EnvArgs,
        /// Its name in state now.
        source: String,
        /// The name it has in the definition.
        destination: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Forget resources without destroying them (they keep existing, unmanaged).
    #[command(after_help = "Examples:\n  phoenix state rm dev web --yes")]
    Rm {
        #[command(flatten)]
        env: EnvArgs,
        /// The resources to forget.
        #[arg(required = true)]
        resources: Vec<String>,
        /// Forget without asking (required when stdin is not a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}`: the variable name is empty"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

fn parse_instance(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 40 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || s.starts_with('-') {
        return Err(format!("`{s}`: an instance name is 1-40 letters, digits and `-`, not starting with `-`"));
    }
    Ok(s.to_string())
}

/// `90s`, `5m`, `2h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| format!("`{s}`: expected a duration like 30s, 5m or 2h"))?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("`{s}`: unknown unit `{c}` (use s, m, h or d)")),
        };
    }
    if !num.is_empty() {
        total += num.parse::<u64>().map_err(|_| format!("`{s}`: not a duration"))?;
    }
    Ok(std::time::Duration::from_secs(total))
}
