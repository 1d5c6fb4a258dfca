//! The causal subcommands of `quire analyze` (`gateway`, `uplift`, `abtest`, `promotion`),
//! flattened into [`crate::analyze::AnalyzeCommand`]; the estimators are in quire-causal, the
//! lake-side preparation in `quire_analytics::causal`.

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use quire_analytics::causal::Resampling;
use quire_analytics::causal::abtest::{self, AbParams};
use quire_analytics::causal::gateway::{self, GatewayParams};
use quire_analytics::causal::promotion::{self, PromotionParams};
use quire_analytics::causal::uplift::{self, Treatment, UpliftParams};
use quire_analytics::report::Entry;

use crate::analyze::{CommonArgs, emit};

/// Bootstrap flags.
#[derive(Args, Clone)]
pub struct BootstrapArgs {
    /// Bootstrap replicates for the confidence intervals
    #[arg(long, default_value_t = 200)]
    pub replicates: usize,
    /// Seed of the bootstrap (printed with the result)
    #[arg(long, default_value_t = 20_261_125)]
    pub seed: u64,
}

impl BootstrapArgs {
    fn resampling(&self) -> Result<Resampling> {
        if self.replicates == 1 {
            bail!("--replicates must be 0 (no intervals) or at least 2");
        }
        Ok(Resampling {
            replicates: self.replicates,
            seed: self.seed,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TreatmentArg {
    /// Clicked a recommendation before checkout
    RecClick,
    /// Read a review before checkout
    ReviewRead,
}

#[derive(Args)]
pub struct UpliftArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The interaction whose effect is estimated
    #[arg(long, value_enum)]
    pub treatment: TreatmentArg,
    /// Drop sessions whose propensity is outside [trim, 1 − trim]; 0 keeps all
    #[arg(long, default_value_t = 0.01)]
    pub trim: f64,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

#[derive(Args)]
pub struct AbtestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Experiment name (a key of the events' `experiments`)
    #[arg(long)]
    pub experiment: String,
    /// The control variant
    #[arg(long)]
    pub control: String,
    /// Planned users per variant (default: what --mde needs at α 0.05, power 0.8)
    #[arg(long)]
    pub planned_users: Option<u64>,
    /// Minimum detectable effect, relative to the control's conversion, for the planned size
    #[arg(long, default_value_t = 0.05)]
    pub mde: f64,
}

#[derive(Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Days after the first order whose revenue is the outcome
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Books with fewer first buyers are not tested
    #[arg(long, default_value_t = 30)]
    pub min_buyers: usize,
    /// Test at most this many books (those with the most first buyers)
    #[arg(long, default_value_t = 25)]
    pub max_books: usize,
    /// False discovery rate of the Benjamini–Hochberg decision
    #[arg(long, default_value_t = 0.05)]
    pub fdr: f64,
    /// Bootstrap replicates per book
    #[arg(long, default_value_t = 100)]
    pub replicates: usize,
    /// Seed of the bootstrap
    #[arg(long, default_value_t = 20_261_125)]
    pub seed: u64,
}

#[derive(Args)]
pub struct PromotionArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The promo code of the promotion
    #[arg(long)]
    pub code: String,
    /// Days before the promotion used as the baseline (at most)
    #[arg(long, default_value_t = 14)]
    pub before_days: u32,
    /// Days after the promotion examined for a pull-forward dip
    #[arg(long, default_value_t = 7)]
    pub after_days: u32,
    /// The campaign's books (comma-separated book ids); without it, the books sold mostly with
    /// the code in the window, a selection that biases the lift upwards (the result warns)
    #[arg(long, value_delimiter = ',')]
    pub books: Option<Vec<String>>,
}

#[derive(Subcommand)]
pub enum CausalCommand {
    /// Books whose purchase as a first book raises later spend (AIPW per book, BH across books)
    Gateway(GatewayArgs),
    /// Effect of recommendation clicks or review reading on ordering (naive, regression, IPW, AIPW)
    Uplift(UpliftArgs),
    /// A/B test as docs/contracts/cli.md defines it, with SRM, CUPED, Welch and a sample-size check
    Abtest(AbtestArgs),
    /// Incremental sales of a promotion by difference-in-differences, and its cannibalization
    Promotion(PromotionArgs),
}

pub fn analyze(cmd: CausalCommand) -> Result<()> {
    match cmd {
        CausalCommand::Uplift(a) => {
            if !(0.0..0.5).contains(&a.trim) {
                bail!("--trim must be in [0, 0.5), got {}", a.trim);
            }
            let p = UpliftParams {
                treatment: match a.treatment {
                    TreatmentArg::RecClick => Treatment::RecClick,
                    TreatmentArg::ReviewRead => Treatment::ReviewRead,
                },
                trim: (a.trim > 0.0).then_some(a.trim),
                resampling: a.bootstrap.resampling()?,
            };
            let ds = a.common.dataset()?;
            emit(&uplift::run(&ds, &p)?, &a.common)
        }
        CausalCommand::Abtest(a) => {
            let p = AbParams {
                experiment: a.experiment,
                control: a.control,
                planned_users: a.planned_users,
                mde: a.mde,
            };
            let ds = a.common.dataset()?;
            emit(&abtest::run(&ds, &p)?, &a.common)
        }
        CausalCommand::Gateway(a) => {
            let p = GatewayParams {
                days: a.days,
                min_buyers: a.min_buyers,
                max_books: a.max_books,
                fdr: a.fdr,
                resampling: BootstrapArgs {
                    replicates: a.replicates,
                    seed: a.seed,
                }
                .resampling()?,
            };
            let ds = a.common.dataset()?;
            emit(&gateway::run(&ds, &p)?, &a.common)
        }
        CausalCommand::Promotion(a) => {
            let p = PromotionParams {
                code: a.code,
                before_days: a.before_days,
                after_days: a.after_days,
                books: a.books,
            };
            let ds = a.common.dataset()?;
            emit(&promotion::run(&ds, &p)?, &a.common)
        }
    }
}

/// The causal sections of `quire analyze report`, with their defaults. The A/B test reads the
/// simulator's experiment (`search_ranker`, control `bm25`); the promotion section reports on
/// the campaign code with the most orders.
pub fn report_entries() -> Vec<Entry> {
    vec![
        Entry::new("gateway", |ds| {
            // The revenue of the 14 days after a first order, or of half the store's days
            // when it has fewer than 28: a short store would leave no first order to follow.
            let days = GatewayParams::default()
                .days
                .min(ds.order_days()? / 2)
                .max(1);
            Ok(gateway::run(
                ds,
                &GatewayParams {
                    days,
                    ..GatewayParams::default()
                },
            )?)
        }),
        Entry::new("uplift", |ds| {
            Ok(uplift::run(
                ds,
                &UpliftParams {
                    treatment: Treatment::RecClick,
                    trim: Some(0.01),
                    resampling: Resampling::default(),
                },
            )?)
        }),
        Entry::new("abtest", |ds| {
            Ok(abtest::run(
                ds,
                &AbParams {
                    experiment: "search_ranker".into(),
                    control: "bm25".into(),
                    planned_users: None,
                    mde: 0.05,
                },
            )?)
        }),
        Entry::new("promotion", |ds| {
            let code = promotion::campaign_code(ds)?;
            Ok(promotion::run(
                ds,
                &PromotionParams {
                    code,
                    before_days: 14,
                    after_days: 7,
                    books: None,
                },
            )?)
        }),
    ]
}
