//! The team's audience rules: one read-only SELECT per `.sql` file, checked with sqlparser before
//! anything runs, then run with DataFusion over the evaluation rows.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Ident, Query, Select, SetExpr, SetOperator, SetQuantifier, Spanned,
    Statement, TableFactor, Value, Values, Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;

use crate::data::{Ids, Table, datafusion_message, runtime, text_array};
use crate::{Error, Result};

/// A rule file, read and checked.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The file's stem: `rules/young_urban.sql` is `young_urban`.
    pub name: String,
    pub file: PathBuf,
    pub sql: String,
    /// The statement as checked, with long chains of OR, AND and UNION balanced (see
    /// `Balancer`): what DataFusion plans.
    statement: Statement,
}

impl Rule {
    /// A rule from SQL text, checked as a file's would be.
    pub fn new(name: &str, file: &Path, sql: &str, table: &str) -> Result<Rule> {
        let statement = validate(file, sql, table)?;
        Ok(Rule {
            name: name.to_string(),
            file: file.to_path_buf(),
            sql: sql.to_string(),
            statement,
        })
    }
}

/// The rows of the evaluation table a rule selects (indexes, ascending, no repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAudience {
    pub rows: Vec<usize>,
}

/// Expands the arguments into rule files: existing paths as given, glob patterns expanded (so a
/// quoted `'rules/*.sql'` works too). A pattern matching nothing is an error.
pub fn expand_rule_paths(args: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        if path.exists() || !arg.contains(['*', '?', '[']) {
            files.push(path);
            continue;
        }
        let pattern =
            glob::glob(arg).map_err(|e| Error::Config(format!("rule pattern {arg:?}: {e}")))?;
        let mut matched: Vec<PathBuf> = pattern.filter_map(|p| p.ok()).collect();
        if matched.is_empty() {
            return Err(Error::Config(format!(
                "rule pattern {arg:?} matches no file"
            )));
        }
        matched.sort();
        files.extend(matched);
    }
    if files.is_empty() {
        return Err(Error::Config("no rule files given".into()));
    }
    Ok(files)
}

/// The largest rule file read (a generated rule of 100,000 terms is about 2 MB).
pub const MAX_RULE_BYTES: u64 = 8 << 20;

/// Reads and checks a rule file against the table name rules may select from.
pub fn load_rule(file: &Path, table: &str) -> Result<Rule> {
    let meta = std::fs::metadata(file).map_err(|e| Error::io(file, e))?;
    if !meta.is_file() {
        return Err(rule_error(file, 0, 0, "is not a regular file"));
    }
    if meta.len() > MAX_RULE_BYTES {
        return Err(rule_error(
            file,
            0,
            0,
            format!(
                "is {} bytes, more than the {MAX_RULE_BYTES} a rule may hold",
                meta.len()
            ),
        ));
    }
    let sql = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(&sql).to_string();
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    Rule::new(&name, file, &sql, table)
}

fn rule_error(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Error {
    let location = if line > 0 {
        format!("{}:{line}:{column}", crate::remote::shown(file))
    } else {
        crate::remote::shown(file)
    };
    Error::Rule {
        location,
        message: message.into(),
    }
}

/// Expressions nested deeper than this (after OR and AND chains are balanced) are refused:
/// DataFusion's planning time grows with the square of an expression's depth.
pub const MAX_EXPRESSION_DEPTH: usize = 256;
/// Set operations (UNION, INTERSECT, EXCEPT) nested deeper than this, after UNION chains are
/// balanced, are refused.
pub const MAX_SET_DEPTH: usize = 64;

/// Exactly one statement, a query, reading only `table` (and its own CTEs), with no `INTO` and
/// no table functions, nested no deeper than the limits. Returns the statement with its long
/// OR, AND and UNION chains balanced.
pub fn validate(file: &Path, sql: &str, table: &str) -> Result<Statement> {
    let dialect = GenericDialect {};
    let statements = Parser::parse_sql(&dialect, sql).map_err(|e| {
        let text = e.to_string();
        let (mut line, mut column) = parser_location(&text);
        if line == 0 && text.contains("found: EOF") {
            (line, column) = end_of(sql);
        }
        let message = text
            .trim_start_matches("sql parser error: ")
            .split(" at Line: ")
            .next()
            .unwrap_or(&text)
            .to_string();
        rule_error(file, line, column, format!("syntax error: {message}"))
    })?;
    match statements.len() {
        0 => return Err(rule_error(file, 0, 0, "the file holds no SQL statement")),
        1 => {}
        n => {
            let (line, column) = statement_start(sql, 1).unwrap_or((0, 0));
            return Err(rule_error(
                file,
                line,
                column,
                format!("a rule is one SELECT, but this file holds {n} statements"),
            ));
        }
    }
    let statement = &statements[0];
    let Statement::Query(query) = statement else {
        let (line, column) = statement_start(sql, 0).unwrap_or((0, 0));
        let kind = statement.to_string();
        let kind = kind
            .split_whitespace()
            .next()
            .unwrap_or("this")
            .to_uppercase();
        return Err(rule_error(
            file,
            line,
            column,
            format!("a rule must be a read-only SELECT, not a {kind} statement"),
        ));
    };
    let mut checker = ReadOnlyChecker {
        table: table.to_string(),
        ctes: BTreeSet::new(),
    };
    if let ControlFlow::Break((line, column, message)) = query.visit(&mut checker) {
        return Err(rule_error(file, line, column, message));
    }
    let mut statement = statements.into_iter().next().expect("one statement");
    let _ = VisitMut::visit(&mut statement, &mut Balancer);
    let mut depth = DepthChecker::default();
    if let ControlFlow::Break((line, column, message)) = statement.visit(&mut depth) {
        return Err(rule_error(file, line, column, message));
    }
    Ok(statement)
}

/// Rewrites each chain of one associative operator (OR, AND; UNION, UNION ALL with the same
/// quantifier) as a balanced tree of the same operands in the same order: generated rules of
/// thousands of terms arrive as chains thousands deep, which DataFusion plans in time quadratic
/// in the depth (an OR of 2,000 terms took 14 s, of 10,000 over 6 minutes); balanced, the depth
/// is the logarithm. The meaning is the same (both operators are associative in SQL's
/// three-valued logic, and a union's columns are named after its first query, which stays first).
struct Balancer;

impl Balancer {
    fn same_op(expr: &Expr, op: &BinaryOperator) -> bool {
        matches!(expr, Expr::BinaryOp { op: o, .. } if o == op)
    }

    /// The operands of the chain of `op` rooted at `expr`, left to right (without recursion).
    fn operands(expr: Expr, op: &BinaryOperator) -> Vec<Expr> {
        let mut out = Vec::new();
        let mut stack = vec![expr];
        while let Some(e) = stack.pop() {
            match e {
                Expr::BinaryOp { left, op: o, right } if o == *op => {
                    stack.push(*right);
                    stack.push(*left);
                }
                other => out.push(other),
            }
        }
        out
    }

    fn balanced(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
        if operands.len() == 1 {
            return operands.pop().expect("one operand");
        }
        let right = operands.split_off(operands.len() / 2);
        Expr::BinaryOp {
            left: Box::new(Self::balanced(operands, op)),
            op: op.clone(),
            right: Box::new(Self::balanced(right, op)),
        }
    }

    fn balance_set(body: &mut SetExpr) {
        let SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier,
            ..
        } = body
        else {
            return;
        };
        let quantifier = *set_quantifier;
        let same = |e: &SetExpr| matches!(e, SetExpr::SetOperation { op: SetOperator::Union, set_quantifier, .. } if *set_quantifier == quantifier);
        let placeholder = SetExpr::Values(Values {
            explicit_row: false,
            value_keyword: false,
            rows: Vec::new(),
        });
        let mut leaves = Vec::new();
        let mut stack = vec![std::mem::replace(body, placeholder)];
        while let Some(e) = stack.pop() {
            if same(&e) {
                let SetExpr::SetOperation { left, right, .. } = e else {
                    unreachable!("checked by same()")
                };
                stack.push(*right);
                stack.push(*left);
            } else {
                leaves.push(e);
            }
        }
        fn build(mut leaves: Vec<SetExpr>, quantifier: SetQuantifier) -> SetExpr {
            if leaves.len() == 1 {
                return leaves.pop().expect("one leaf");
            }
            let right = leaves.split_off(leaves.len() / 2);
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: quantifier,
                left: Box::new(build(leaves, quantifier)),
                right: Box::new(build(right, quantifier)),
            }
        }
        *body = build(leaves, quantifier);
    }
}

impl VisitorMut for Balancer {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::BinaryOp { op, left, right } = expr
            && matches!(op, BinaryOperator::Or | BinaryOperator::And)
            && (Self::same_op(left, op) || Self::same_op(right, op))
        {
            let op = op.clone();
            let chain = std::mem::replace(expr, Expr::Identifier(Ident::new("")));
            *expr = Self::balanced(Self::operands(chain, &op), &op);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        Self::balance_set(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// Refuses expressions and set operations nested past the limits, located where the limit is
/// crossed.
#[derive(Default)]
struct DepthChecker {
    depth: usize,
}

fn set_depth(body: &SetExpr) -> usize {
    // Iterative: the chain may be deep when it is not a UNION chain.
    let mut deepest = 0;
    let mut stack = vec![(body, 0usize)];
    while let Some((e, d)) = stack.pop() {
        if let SetExpr::SetOperation { left, right, .. } = e {
            deepest = deepest.max(d + 1);
            stack.push((left, d + 1));
            stack.push((right, d + 1));
        }
    }
    deepest
}

impl Visitor for DepthChecker {
    type Break = (u64, u64, String);

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            let at = expr.span().start;
            return ControlFlow::Break((
                at.line,
                at.column,
                format!(
                    "the expression here is nested more than {MAX_EXPRESSION_DEPTH} deep: write long lists as IN (...), or split the rule"
                ),
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Self::Break> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        let depth = set_depth(&query.body);
        if depth > MAX_SET_DEPTH {
            let at = query.span().start;
            return ControlFlow::Break((
                at.line,
                at.column,
                format!(
                    "set operations (UNION, INTERSECT, EXCEPT) are nested {depth} deep, more than {MAX_SET_DEPTH}: combine the conditions in one WHERE, or split the rule"
                ),
            ));
        }
        ControlFlow::Continue(())
    }
}

/// Where statement `index` (0-based) begins: its first token after `index` top-level semicolons.
fn statement_start(sql: &str, index: usize) -> Option<(u64, u64)> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    let mut seen = 0;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => seen += 1,
            Token::Whitespace(_) => {}
            _ if seen == index => return Some((t.span.start.line, t.span.start.column)),
            _ => {}
        }
    }
    None
}

/// The line and column just past the last non-blank character: where "unexpected end" points.
fn end_of(sql: &str) -> (u64, u64) {
    let trimmed = sql.trim_end();
    let line = trimmed.lines().count().max(1) as u64;
    let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, column)
}

/// sqlparser puts the location at the end of its message: "... at Line: 3, Column: 7".
fn parser_location(message: &str) -> (u64, u64) {
    let number_after = |key: &str| -> Option<u64> {
        let rest = &message[message.rfind(key)? + key.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    (
        number_after("Line:").unwrap_or(0),
        number_after("Column:").unwrap_or(0),
    )
}

struct ReadOnlyChecker {
    table: String,
    ctes: BTreeSet<String>,
}

impl Visitor for ReadOnlyChecker {
    type Break = (u64, u64, String);

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Self::Break> {
        if let Some(into) = &select.into {
            let at = into.name.span().start;
            return ControlFlow::Break((
                at.line,
                at.column,
                "SELECT ... INTO writes a table; a rule may only read".into(),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Self::Break> {
        let at = factor.span().start;
        match factor {
            TableFactor::Table { name, args, .. } => {
                let at = name.span().start;
                if args.is_some() {
                    return ControlFlow::Break((
                        at.line,
                        at.column,
                        format!(
                            "table function {name} is not allowed: a rule reads only the {:?} table",
                            self.table
                        ),
                    ));
                }
                let plain = name.to_string().trim_matches('"').to_string();
                if plain != self.table && !self.ctes.contains(&plain) {
                    return ControlFlow::Break((
                        at.line,
                        at.column,
                        format!("unknown table {name}: rules select from {:?}", self.table),
                    ));
                }
                ControlFlow::Continue(())
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {
                ControlFlow::Continue(())
            }
            other => ControlFlow::Break((
                at.line,
                at.column,
                format!(
                    "{} is not allowed in a rule: select from the {:?} table",
                    other
                        .to_string()
                        .split('(')
                        .next()
                        .unwrap_or("this table source"),
                    self.table
                ),
            )),
        }
    }
}

/// Rows per partition of the table rules run over.
const RULE_PARTITION_ROWS: usize = 1 << 20;

/// What one rule may use while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleLimits {
    /// Past this the rule is stopped (a join without a condition, a recursive query that never
    /// ends).
    pub timeout: std::time::Duration,
    /// The memory DataFusion's operators (joins, aggregates, sorts) may hold; nothing spills to
    /// disk.
    pub memory_bytes: usize,
}

impl Default for RuleLimits {
    fn default() -> Self {
        RuleLimits {
            timeout: std::time::Duration::from_secs(60),
            memory_bytes: 4 << 30,
        }
    }
}

/// A session planned for `cores` threads, its operators' memory bounded by `memory_bytes`.
fn limited_session(path: &Path, cores: usize, memory_bytes: usize) -> Result<SessionContext> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    // Identifiers are not folded to lower case, which would make `CoffeeHouse` unknown; column
    // names a rule writes in another case are resolved before planning (`ColumnCase`).
    let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(cores);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let runtime_env = RuntimeEnvBuilder::new()
        .with_memory_limit(memory_bytes, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(|e| Error::data(path, e.to_string()))?;
    Ok(SessionContext::new_with_config_rt(config, runtime_env))
}

/// A session with `table` registered as `name` in `partitions`, planned for `cores` threads,
/// its operators' memory bounded by `memory_bytes`.
fn rule_context(
    table: &Table,
    name: &str,
    cores: usize,
    partitions: Vec<Vec<arrow::array::RecordBatch>>,
    memory_bytes: usize,
) -> Result<SessionContext> {
    let ctx = limited_session(&table.path, cores, memory_bytes)?;
    let mem = MemTable::try_new(table.batch.schema(), partitions)
        .map_err(|e| Error::data(&table.path, e.to_string()))?;
    ctx.register_table(name, Arc::new(mem))
        .map_err(|e| Error::data(&table.path, e.to_string()))?;
    Ok(ctx)
}

/// Runs `work` (one rule's planning and execution) as its own task, so the time limit is kept
/// even while one of its operators computes for long without yielding; past it, the task is
/// aborted (it stops at its next yield; the caller goes on at once).
fn within_time_limit<T: Send + 'static>(
    rule: &Rule,
    limit: std::time::Duration,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    runtime().block_on(async {
        let task = tokio::spawn(work);
        let abort = task.abort_handle();
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(rule_error(
                &rule.file,
                0,
                0,
                format!("the rule's task failed: {join}"),
            )),
            Err(_) => {
                abort.abort();
                Err(rule_error(
                    &rule.file,
                    0,
                    0,
                    format!(
                        "the rule ran for longer than {} s and was stopped (compare.rule_timeout): a join without a condition or a recursive query that never ends are the usual causes",
                        limit.as_secs_f64()
                    ),
                ))
            }
        }
    })
}

/// Plans `rule` on `ctx` (on `serial`, one partition, when its result could depend on the order
/// partitions finish in) and starts it: its result stream and the position of the id column.
/// The plan's schema says whether the result names the id column, before it runs and whether
/// or not it returns rows.
async fn execute_rule(
    ctx: &SessionContext,
    serial: &SessionContext,
    rule: &Rule,
    id_column: &str,
    memory_bytes: usize,
) -> Result<(datafusion::physical_plan::SendableRecordBatchStream, usize)> {
    let mut df = plan_rule(ctx, rule).await?;
    if order_sensitive(df.logical_plan()) {
        df = plan_rule(serial, rule).await?;
    }
    let index = id_position(&df, rule, id_column)?;
    // Only the id column is read from the result: said to the planner, a filter then carries
    // only the columns it tests and the id, not every column a `SELECT *` names.
    let id = datafusion::common::Column::from(df.schema().qualified_field(index));
    let df = df
        .select(vec![datafusion::prelude::Expr::Column(id)])
        .map_err(|e| planning_error(rule, &e))?;
    let stream = df
        .execute_stream()
        .await
        .map_err(|e| execution_error(rule, &e, memory_bytes))?;
    Ok((stream, 0))
}

/// Runs `rule` over a table file read as it streams from disk (the candidates of `select`),
/// under `limits`, and returns `key` of each id it selects, taken as the result streams (a rule
/// may repeat an id; only the keys are kept, so a compact key keeps memory small). The file is
/// registered as `table` read with `load`, the same types `score` reads it with; `id_column`
/// must be a column of the file. A rule whose result can depend on the order partitions finish
/// in runs on one partition, as `RuleRunner` runs it.
pub fn run_over_file<K: Send + 'static>(
    rule: &Rule,
    path: &Path,
    load: &crate::data::LoadOptions,
    table: &str,
    id_column: &str,
    limits: RuleLimits,
    key: fn(&str) -> K,
) -> Result<Vec<K>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ctx = limited_session(path, cores, limits.memory_bytes)?;
    // The types are inferred once (inference reads the file's first records) for both sessions.
    let schema = crate::data::table_schema(&ctx, path, load)?;
    let schema = if load.na_values.is_empty() {
        schema
    } else {
        crate::data::numbers_as_text(&schema).0
    };
    let register = |ctx: SessionContext| -> Result<SessionContext> {
        let frame = runtime().block_on(crate::data::open_frame(&ctx, path, load, &schema))?;
        ctx.register_table(table, frame.into_view())
            .map_err(|e| Error::data(path, e.to_string()))?;
        Ok(ctx)
    };
    let serial = limited_session(path, 1, limits.memory_bytes)?;
    let (ctx, serial) = (register(ctx)?, register(serial)?);
    let (owned, id_column, memory_bytes) =
        (rule.clone(), id_column.to_string(), limits.memory_bytes);
    let work = async move {
        let rule = &owned;
        let (mut stream, index) =
            execute_rule(&ctx, &serial, rule, &id_column, memory_bytes).await?;
        let mut found = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| execution_error(rule, &e, memory_bytes))?;
            let values =
                text_array(batch.column(index)).map_err(|e| rule_error(&rule.file, 0, 0, e))?;
            found.extend(values.iter().flatten().map(key));
        }
        Ok::<_, Error>(found)
    };
    within_time_limit(rule, limits.timeout, work)
}

/// Whether a rule's result can depend on the order partitions finish in, anywhere in its plan
/// (subqueries included): an aggregate adds partial sums in that order (a float AVG may change
/// in its last bit, and a row at the boundary with it), a LIMIT keeps the rows that come first
/// (and which of tied rows), a window numbers rows as they come. Such rules run on one
/// partition, so identical inputs give identical audiences.
fn order_sensitive(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found = false;
    // The visit cannot fail: the closure never returns an error.
    let _ = plan.apply_with_subqueries(|node| {
        found = matches!(
            node,
            LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) | LogicalPlan::Limit(_)
        );
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// The SQL options rules run under: queries only.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The schema of the one table a rule session holds.
async fn registered_schema(ctx: &SessionContext) -> Option<SchemaRef> {
    let options = ctx.state().config().options().catalog.clone();
    let names = ctx
        .catalog(&options.default_catalog)?
        .schema(&options.default_schema)?
        .table_names();
    let name = names.first()?;
    ctx.table_provider(name.as_str())
        .await
        .ok()
        .map(|t| t.schema())
}

/// Rewrites column names to the table's spelling: a name that matches a column exactly stays;
/// else the one column it matches ignoring case, as DuckDB, Snowflake and BigQuery resolve
/// them (`bouncerates` finds `BounceRates`); several such columns is an error naming them.
struct ColumnCase<'a> {
    columns: &'a [String],
}

impl VisitorMut for ColumnCase<'_> {
    type Break = (u64, u64, String);

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        let ident = match expr {
            Expr::Identifier(ident) => ident,
            Expr::CompoundIdentifier(parts) => match parts.last_mut() {
                Some(last) => last,
                None => return ControlFlow::Continue(()),
            },
            _ => return ControlFlow::Continue(()),
        };
        if self.columns.contains(&ident.value) {
            return ControlFlow::Continue(());
        }
        let folded = ident.value.to_lowercase();
        let matches: Vec<&String> = self
            .columns
            .iter()
            .filter(|c| c.to_lowercase() == folded)
            .collect();
        match matches.as_slice() {
            [] => ControlFlow::Continue(()),
            [one] => {
                ident.value = (*one).clone();
                ControlFlow::Continue(())
            }
            several => ControlFlow::Break((
                ident.span.start.line,
                ident.span.start.column,
                format!(
                    "{:?} matches several columns when case is ignored: {}; write the one meant exactly, in double quotes",
                    ident.value,
                    several
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// A true/false column compared with text (`Weekend = 'TRUE'`): DataFusion refuses to compare
/// a Boolean with a string, with a message that names neither the column nor the fix.
struct BooleanText<'a> {
    booleans: &'a [String],
}

impl Visitor for BooleanText<'_> {
    type Break = (u64, u64, String);

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        let column = |e: &Expr| match e {
            Expr::Identifier(i) => Some(i.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().cloned(),
            _ => None,
        };
        let text = |e: &Expr| match e {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(t) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Expr::BinaryOp { left, op, right } = expr
            && matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq)
        {
            let pair = match (column(left), text(right), column(right), text(left)) {
                (Some(c), Some(t), _, _) | (_, _, Some(c), Some(t)) => Some((c, t)),
                _ => None,
            };
            if let Some((c, t)) = pair
                && self.booleans.contains(&c.value)
            {
                let literal = match t.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "y" | "1" | "t" => "TRUE",
                    _ => "FALSE",
                };
                return ControlFlow::Break((
                    c.span.start.line,
                    c.span.start.column,
                    format!(
                        "{} is a true/false column, and '{t}' is text: write {} {op} {literal} (no quotes)",
                        c.value, c.value
                    ),
                ));
            }
        }
        ControlFlow::Continue(())
    }
}

/// The statement DataFusion plans for `rule` over `schema`: column names resolved ignoring
/// case where they must be, text compared with a true/false column refused with the fix.
fn resolved_statement(rule: &Rule, schema: &SchemaRef) -> Result<Statement> {
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut statement = rule.statement.clone();
    if let ControlFlow::Break((line, column, message)) =
        VisitMut::visit(&mut statement, &mut ColumnCase { columns: &columns })
    {
        return Err(rule_error(&rule.file, line, column, message));
    }
    let booleans: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &arrow::datatypes::DataType::Boolean)
        .map(|f| f.name().clone())
        .collect();
    if !booleans.is_empty()
        && let ControlFlow::Break((line, column, message)) = Visit::visit(
            &statement,
            &mut BooleanText {
                booleans: &booleans,
            },
        )
    {
        return Err(rule_error(&rule.file, line, column, message));
    }
    Ok(statement)
}

/// Plans `rule`'s checked statement on `ctx` (read-only, deterministic), with planning errors
/// located at the offending identifier.
async fn plan_rule(ctx: &SessionContext, rule: &Rule) -> Result<DataFrame> {
    use datafusion::sql::parser::Statement as DfStatement;
    let statement = match registered_schema(ctx).await {
        Some(schema) => resolved_statement(rule, &schema)?,
        None => rule.statement.clone(),
    };
    let plan = ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await
        .map_err(|e| planning_error(rule, &e))?;
    read_only()
        .verify_plan(&plan)
        .map_err(|e| planning_error(rule, &e))?;
    check_deterministic(rule, &plan)?;
    ctx.execute_logical_plan(plan)
        .await
        .map_err(|e| planning_error(rule, &e))
}

/// Refuses functions whose value changes from run to run (random, uuid: volatile; now,
/// current_date: stable within a query only): one rule must choose the same people from the
/// same data every time.
fn check_deterministic(rule: &Rule, plan: &datafusion::logical_expr::LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr as DfExpr, Volatility};
    let mut found: Option<(String, Volatility)> = None;
    let _ = plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                if let DfExpr::ScalarFunction(f) = e {
                    let volatility = f.func.signature().volatility;
                    if volatility != Volatility::Immutable {
                        found = Some((f.func.name().to_string(), volatility));
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    let Some((name, volatility)) = found else {
        return Ok(());
    };
    let (line, column) = locate_word(&rule.sql, &name).unwrap_or((0, 0));
    let why = match volatility {
        Volatility::Volatile => "gives other values on every call",
        _ => "depends on when the rule runs",
    };
    Err(rule_error(
        &rule.file,
        line,
        column,
        format!(
            "{name}() {why}: a rule must choose the same people from the same data on every run"
        ),
    ))
}

/// The position of the id column in a planned rule's result, or the error saying to select it.
fn id_position(df: &DataFrame, rule: &Rule, id_column: &str) -> Result<usize> {
    df.schema()
        .fields()
        .iter()
        .position(|f| f.name() == id_column)
        .ok_or_else(|| {
            rule_error(
                &rule.file,
                0,
                0,
                format!("the rule's result has no id column {id_column:?}: select it (or *)"),
            )
        })
}

/// Plans rules against a table's schema alone (no data), to learn before anything runs whether
/// each rule plans, returns the id column, and which of the table's columns it reads.
pub struct RulePlanner {
    ctx: SessionContext,
    table: String,
    id_column: String,
}

impl RulePlanner {
    pub fn new(schema: SchemaRef, table: &str, id_column: &str) -> Result<RulePlanner> {
        let empty = Table {
            path: PathBuf::from(table),
            batch: arrow::array::RecordBatch::new_empty(schema),
        };
        let ctx = rule_context(
            &empty,
            table,
            1,
            vec![vec![]],
            RuleLimits::default().memory_bytes,
        )?;
        Ok(RulePlanner {
            ctx,
            table: table.to_string(),
            id_column: id_column.to_string(),
        })
    }

    /// The table's columns the rule reads to choose its people (the id it returns aside):
    /// columns its filters, joins, groupings and orderings use. A column only passed through to
    /// the result (as `SELECT *` passes every column) is not read. Found from the optimised plan
    /// of the rule's ids, whose table scans keep only the columns the result depends on.
    pub fn columns_read(&self, rule: &Rule) -> Result<Vec<String>> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use datafusion::logical_expr::LogicalPlan;
        let plan = runtime().block_on(async {
            let df = plan_rule(&self.ctx, rule).await?;
            id_position(&df, rule, &self.id_column)?;
            let ids = df
                .select_columns(&[self.id_column.as_str()])
                .map_err(|e| rule_error(&rule.file, 0, 0, datafusion_message(&e)))?;
            let (state, plan) = ids.into_parts();
            state
                .optimize(&plan)
                .map_err(|e| rule_error(&rule.file, 0, 0, datafusion_message(&e)))
        })?;
        let mut read = BTreeSet::new();
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && scan.table_name.table() == self.table
            {
                for field in scan.projected_schema.fields() {
                    read.insert(field.name().clone());
                }
                for filter in &scan.filters {
                    for column in filter.column_refs() {
                        read.insert(column.name.clone());
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        read.remove(&self.id_column);
        Ok(read.into_iter().collect())
    }
}

/// The error for a rule that reads the label column, located where the rule names it.
pub fn reads_label_error(rule: &Rule, label: &str) -> Error {
    let (line, column) = locate_word(&rule.sql, label).unwrap_or((0, 0));
    rule_error(
        &rule.file,
        line,
        column,
        format!(
            "the rule reads the label column {label:?}: a rule must choose people before their outcome is known, so it cannot be judged against a model that does not see it"
        ),
    )
}

/// Runs rules over one table with DataFusion: on every core, or on one when the result could
/// depend on the order the cores finish in.
pub struct RuleRunner {
    /// The table in slices, run on every core.
    ctx: SessionContext,
    /// The table as one partition, run on one core.
    serial: SessionContext,
    id_column: String,
    ids: Ids,
    limits: RuleLimits,
}

impl RuleRunner {
    /// Registers `table` under `name`; `ids` are its id values row by row.
    pub fn new(
        table: &Table,
        name: &str,
        id_column: &str,
        ids: &Ids,
        limits: RuleLimits,
    ) -> Result<RuleRunner> {
        Self::with_partition_rows(table, name, id_column, ids, RULE_PARTITION_ROWS, limits)
    }

    fn with_partition_rows(
        table: &Table,
        name: &str,
        id_column: &str,
        ids: &Ids,
        partition_rows: usize,
        limits: RuleLimits,
    ) -> Result<RuleRunner> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Slices of at most `partition_rows` rows (zero-copy), and at least one per core, so
        // scans and filters run on every core. With fewer partitions than cores DataFusion would
        // put a round-robin repartition after the scan, which counts each slice it holds as the
        // whole table's buffers against the memory limit (a slice reports its parents' sizes):
        // a plain filter could fail. A filter's audience is a set of rows, so the order rows
        // come back in does not matter. An empty table gets its one (empty) partition.
        let rows = table.batch.num_rows();
        let step = partition_rows.min(rows.div_ceil(cores)).max(1);
        let partitions: Vec<Vec<_>> = (0..rows.max(1))
            .step_by(step)
            .map(|start| vec![table.batch.slice(start, step.min(rows - start))])
            .collect();
        let ctx = rule_context(table, name, cores, partitions, limits.memory_bytes)?;
        // Rules whose result can depend on the order partitions finish in run on one.
        let serial = rule_context(
            table,
            name,
            1,
            vec![vec![table.batch.clone()]],
            limits.memory_bytes,
        )?;
        Ok(RuleRunner {
            ctx,
            serial,
            id_column: id_column.to_string(),
            ids: ids.clone(),
            limits,
        })
    }

    /// The rows a rule selects. The result must carry the id column. Its batches are read as
    /// they come (a result repeating people, as a join may, never piles up in memory), and the
    /// rule is stopped past `limits.timeout`.
    pub fn run(&self, rule: &Rule) -> Result<RuleAudience> {
        let (ctx, serial) = (self.ctx.clone(), self.serial.clone());
        let (ids, id_column, owned) = (self.ids.clone(), self.id_column.clone(), rule.clone());
        let memory_bytes = self.limits.memory_bytes;
        let work = async move {
            let rule = &owned;
            let (mut stream, index) =
                execute_rule(&ctx, &serial, rule, &id_column, memory_bytes).await?;
            let mut selected = vec![false; ids.len()];
            // Ids are looked up on every core, a stretch of the result at a time (a result
            // repeating people, as a join may, never piles up in memory).
            let mut pending: Vec<StringArray> = Vec::new();
            let mut pending_rows = 0;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| execution_error(rule, &e, memory_bytes))?;
                let values =
                    text_array(batch.column(index)).map_err(|e| rule_error(&rule.file, 0, 0, e))?;
                pending_rows += values.len();
                pending.push(values);
                if pending_rows >= LOOKUP_ROWS {
                    select_rows(rule, &ids, &pending, &mut selected)?;
                    pending.clear();
                    pending_rows = 0;
                }
            }
            select_rows(rule, &ids, &pending, &mut selected)?;
            Ok::<_, Error>(selected)
        };
        let selected = within_time_limit(rule, self.limits.timeout, work);
        // What the rule's operators held goes back to the system before the next rule runs.
        crate::memory::release_freed_memory();
        let selected = selected?;
        let rows = selected
            .iter()
            .enumerate()
            .filter_map(|(row, &s)| s.then_some(row))
            .collect();
        Ok(RuleAudience { rows })
    }
}

/// Ids of a rule's result looked up together, on every core.
const LOOKUP_ROWS: usize = 1 << 20;

/// Marks the rows of the ids in `results` as selected; the first id (in the order `results`
/// holds them) that is not in the table is an error.
fn select_rows(
    rule: &Rule,
    ids: &Ids,
    results: &[StringArray],
    selected: &mut [bool],
) -> Result<()> {
    use rayon::prelude::*;
    const UNKNOWN: usize = usize::MAX;
    // A result comes in batches of DataFusion's batch size: one task each.
    let rows: Vec<Vec<usize>> = results
        .par_iter()
        .map(|values| {
            values
                .iter()
                .flatten()
                .map(|id| ids.row(id).unwrap_or(UNKNOWN))
                .collect()
        })
        .collect();
    for (values, rows) in results.iter().zip(&rows) {
        for (position, &row) in rows.iter().enumerate() {
            if row == UNKNOWN {
                let id = values.iter().flatten().nth(position).unwrap_or_default();
                return Err(rule_error(
                    &rule.file,
                    0,
                    0,
                    format!("the rule returned id {id:?}, which is not in the table"),
                ));
            }
            selected[row] = true;
        }
    }
    Ok(())
}

/// An error while a rule ran: its memory limit, or DataFusion's own message.
fn execution_error(
    rule: &Rule,
    e: &datafusion::error::DataFusionError,
    memory_bytes: usize,
) -> Error {
    use datafusion::error::DataFusionError;
    if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
        return rule_error(
            &rule.file,
            0,
            0,
            format!(
                "the rule needed more than {} MB while running (compare.rule_memory_mb): a join without a condition is the usual cause",
                memory_bytes >> 20
            ),
        );
    }
    rule_error(&rule.file, 0, 0, datafusion_message(e))
}

/// A planning error, located at the offending identifier when DataFusion names one (a field
/// not found, read from the error itself rather than from its message).
fn planning_error(rule: &Rule, e: &datafusion::error::DataFusionError) -> Error {
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError;
    if let DataFusionError::SchemaError(error, _) = e.find_root()
        && let SchemaError::FieldNotFound {
            field,
            valid_fields,
        } = error.as_ref()
    {
        let (line, column) = locate_word(&rule.sql, field.name()).unwrap_or((0, 0));
        let columns: Vec<&str> = valid_fields.iter().map(|c| c.name()).collect();
        let hint = if double_quoted(&rule.sql, field.name()) {
            format!(
                "; to compare with the text {0}, write it in single quotes: '{0}' (double quotes name a column)",
                field.name()
            )
        } else {
            crate::data::did_you_mean(field.name(), &columns)
        };
        return rule_error(
            &rule.file,
            line,
            column,
            format!(
                "no column named {:?}{hint}; the columns are: {}",
                field.name(),
                columns.join(", ")
            ),
        );
    }
    rule_error(&rule.file, 0, 0, datafusion_message(e))
}

/// Whether `name` appears in `sql` as a double-quoted identifier (`"May"`: MySQL's habit for
/// text, a column name in standard SQL).
fn double_quoted(sql: &str, name: &str) -> bool {
    let dialect = GenericDialect {};
    Tokenizer::new(&dialect, sql)
        .tokenize()
        .is_ok_and(|tokens| {
            tokens.iter().any(
                |t| matches!(t, Token::Word(w) if w.quote_style == Some('"') && w.value == name),
            )
        })
}

/// The line and column of the first identifier token equal to `name` (case-insensitive).
fn locate_word(sql: &str, name: &str) -> Option<(u64, u64)> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    tokens.iter().find_map(|t| match &t.token {
        Token::Word(w) if w.value.eq_ignore_ascii_case(name) => {
            Some((t.span.start.line, t.span.start.column))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1,000-row table: id `c<i>`, spend = i % 97 (+ 0.25), city one of 7.
    fn spend_table() -> (Table, Ids) {
        spend_table_of(1000)
    }

    /// `spend_table` with `n` rows.
    fn spend_table_of(n: usize) -> (Table, Ids) {
        use arrow::array::{Float64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let spend: Vec<f64> = (0..n).map(|i| (i % 97) as f64 + 0.25).collect();
        let city: Vec<String> = (0..n).map(|i| format!("city{}", (i * 13) % 7)).collect();
        let schema = Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("spend", DataType::Float64, true),
            Field::new("city", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(&ids)),
                Arc::new(Float64Array::from(spend)),
                Arc::new(StringArray::from_iter_values(&city)),
            ],
        )
        .unwrap();
        let table = Table {
            path: PathBuf::from("t.csv"),
            batch,
        };
        let ids = crate::data::read_ids(&table, "customer_id").unwrap();
        (table, ids)
    }

    /// A slice of the table reports the memory of the whole table's buffers: an operator that
    /// holds slices as they come from the scan (the round-robin repartition DataFusion puts
    /// after a table of fewer partitions than cores) counts the table once per slice held and
    /// could fail a plain filter under its memory limit. Filters run over a table sliced into
    /// at least as many partitions as cores hold no slices.
    #[test]
    fn a_filter_over_a_small_table_holds_no_slices_against_its_memory_limit() {
        let n = 300_000;
        let (table, ids) = spend_table_of(n);
        let table_bytes = table.batch.get_array_memory_size();
        let limits = RuleLimits {
            memory_bytes: table_bytes + table_bytes / 2,
            ..RuleLimits::default()
        };
        let runner = RuleRunner::new(&table, "t", "customer_id", &ids, limits).unwrap();
        let rule = Rule::new(
            "spenders",
            Path::new("spenders.sql"),
            "SELECT * FROM t WHERE spend >= 10",
            "t",
        )
        .unwrap();
        for _ in 0..5 {
            let audience = runner.run(&rule).unwrap();
            assert_eq!(audience.rows.len(), (0..n).filter(|i| i % 97 >= 10).count());
        }
    }

    #[test]
    fn ids_found_in_many_stretches_and_an_unknown_one_named() {
        let n = 3_000_000;
        let (table, ids) = spend_table_of(n);
        let runner =
            RuleRunner::new(&table, "t", "customer_id", &ids, RuleLimits::default()).unwrap();
        // More than one stretch of lookups, and a join repeating people.
        let everyone = Rule::new(
            "everyone",
            Path::new("everyone.sql"),
            "SELECT customer_id FROM t UNION ALL SELECT customer_id FROM t WHERE spend < 5",
            "t",
        )
        .unwrap();
        assert_eq!(
            runner.run(&everyone).unwrap().rows,
            (0..n).collect::<Vec<_>>()
        );
        // An unknown id far into the result is found and named (which of several would be
        // named first depends on the order partitions finish in: one here).
        let stranger = Rule::new(
            "stranger",
            Path::new("stranger.sql"),
            "SELECT CASE WHEN customer_id = 'c2500001' THEN 'x' || customer_id ELSE customer_id END AS customer_id FROM t",
            "t",
        )
        .unwrap();
        let message = runner.run(&stranger).unwrap_err().to_string();
        assert!(
            message.contains("returned id \"xc2500001\", which is not in the table"),
            "{message}"
        );
    }

    #[test]
    fn partitioned_tables_give_the_same_audiences() {
        let (table, ids) = spend_table();
        let rules = [
            "SELECT customer_id FROM history WHERE spend > (SELECT AVG(spend) FROM history)",
            "SELECT * FROM history WHERE city IN (SELECT city FROM history GROUP BY city ORDER BY COUNT(*) DESC, city LIMIT 3)",
            "SELECT customer_id FROM history ORDER BY spend DESC, customer_id LIMIT 25",
            "SELECT DISTINCT customer_id FROM history WHERE spend BETWEEN 10 AND 20 UNION ALL SELECT customer_id FROM history WHERE spend < 3",
        ];
        let one = RuleRunner::with_partition_rows(
            &table,
            "history",
            "customer_id",
            &ids,
            1 << 20,
            RuleLimits::default(),
        )
        .unwrap();
        for partition_rows in [1, 7, 333, 999, 1000] {
            let many = RuleRunner::with_partition_rows(
                &table,
                "history",
                "customer_id",
                &ids,
                partition_rows,
                RuleLimits::default(),
            )
            .unwrap();
            for sql in rules {
                let rule = Rule::new("r", Path::new("r.sql"), sql, "history").unwrap();
                let expected = one.run(&rule).unwrap();
                assert!(!expected.rows.is_empty(), "{sql}");
                assert!(expected.rows.windows(2).all(|w| w[0] < w[1]), "{sql}");
                assert_eq!(
                    many.run(&rule).unwrap(),
                    expected,
                    "{sql}, {partition_rows} rows per partition"
                );
            }
        }
        // By hand: the 25 highest spends are the 10 rows with i % 97 == 96, the 10 with 95, and
        // of the 10 with 94 the first 5 by customer_id as text: c191, c288, c385, c482, c579.
        let top = one
            .run(&Rule::new("r", Path::new("r.sql"), rules[2], "history").unwrap())
            .unwrap();
        assert_eq!(top.rows.len(), 25);
        let mut expected: Vec<usize> = (0..1000).filter(|i| i % 97 >= 95).collect();
        expected.extend([191, 288, 385, 482, 579]);
        expected.sort_unstable();
        assert_eq!(top.rows, expected);
    }

    #[test]
    fn a_result_without_the_id_column_is_an_error_even_when_empty() {
        let (table, ids) = spend_table();
        let runner = RuleRunner::new(
            &table,
            "history",
            "customer_id",
            &ids,
            RuleLimits::default(),
        )
        .unwrap();
        let run =
            |sql: &str| runner.run(&Rule::new("r", Path::new("r.sql"), sql, "history").unwrap());
        for sql in [
            "SELECT spend FROM history",
            "SELECT spend FROM history WHERE spend > 1000",
        ] {
            let e = run(sql).unwrap_err().to_string();
            assert!(e.contains("no id column \"customer_id\""), "{sql}: {e}");
        }
        assert!(
            run("SELECT customer_id FROM history WHERE spend > 1000")
                .unwrap()
                .rows
                .is_empty()
        );
    }

    #[test]
    fn rules_whose_result_depends_on_partition_order_run_on_one() {
        let (table, ids) = spend_table();
        let runner = RuleRunner::with_partition_rows(
            &table,
            "history",
            "customer_id",
            &ids,
            7,
            RuleLimits::default(),
        )
        .unwrap();
        let sensitive = |sql: &str| {
            let df = runtime().block_on(runner.ctx.sql(sql)).unwrap();
            order_sensitive(df.logical_plan())
        };
        for sql in [
            "SELECT customer_id FROM history WHERE spend > (SELECT AVG(spend) FROM history)",
            "SELECT city, COUNT(*) AS n FROM history GROUP BY city",
            "SELECT * FROM history LIMIT 10",
            "SELECT customer_id FROM history WHERE city IN (SELECT city FROM history ORDER BY spend LIMIT 3)",
            "SELECT customer_id, ROW_NUMBER() OVER (ORDER BY spend) AS r FROM history",
        ] {
            assert!(sensitive(sql), "{sql}");
        }
        for sql in [
            "SELECT customer_id FROM history WHERE spend > 10",
            "SELECT DISTINCT customer_id FROM history WHERE city = 'city1'",
            "SELECT customer_id FROM history WHERE spend < 3 UNION ALL SELECT customer_id FROM history WHERE spend > 90",
            "SELECT customer_id FROM history WHERE city IN (SELECT city FROM history WHERE spend > 95)",
        ] {
            assert!(!sensitive(sql), "{sql}");
        }
    }

    #[test]
    fn float_aggregates_over_many_partitions_give_the_same_audience_every_run() {
        use arrow::array::{Float64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        // 1e16 and -1e16 among ones: the sum depends on the order it is added in (1e16 + 1 is
        // 1e16), so partial sums merged as threads finish would move it from run to run.
        let n = 1000;
        let spend: Vec<f64> = (0..n)
            .map(|i| match i % 50 {
                0 => 1e16,
                25 => -1e16,
                _ => 1.0,
            })
            .collect();
        let schema = Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("spend", DataType::Float64, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("c{i}")),
                )),
                Arc::new(Float64Array::from(spend)),
            ],
        )
        .unwrap();
        let table = Table {
            path: PathBuf::from("t.csv"),
            batch,
        };
        let ids = crate::data::read_ids(&table, "customer_id").unwrap();
        let rule = Rule::new(
            "r",
            Path::new("r.sql"),
            "SELECT customer_id FROM history WHERE spend < (SELECT SUM(spend) FROM history) / 480",
            "history",
        )
        .unwrap();
        let one = RuleRunner::with_partition_rows(
            &table,
            "history",
            "customer_id",
            &ids,
            n,
            RuleLimits::default(),
        )
        .unwrap()
        .run(&rule)
        .unwrap();
        let many = RuleRunner::with_partition_rows(
            &table,
            "history",
            "customer_id",
            &ids,
            7,
            RuleLimits::default(),
        )
        .unwrap();
        for _ in 0..20 {
            assert_eq!(many.run(&rule).unwrap(), one);
        }
    }

    /// A schema as an analyst's file has it: CamelCase, a boolean, two names equal but for case.
    fn camel_planner() -> RulePlanner {
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Schema::new(vec![
            Field::new("SessionId", DataType::Utf8, false),
            Field::new("BounceRates", DataType::Float64, true),
            Field::new("Weekend", DataType::Boolean, true),
            Field::new("Month", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("Score", DataType::Float64, true),
        ]);
        RulePlanner::new(Arc::new(schema), "history", "SessionId").unwrap()
    }

    fn plan_error(planner: &RulePlanner, sql: &str) -> String {
        let rule = Rule::new("r", Path::new("r.sql"), sql, "history").unwrap();
        planner.columns_read(&rule).unwrap_err().to_string()
    }

    #[test]
    fn column_names_match_ignoring_case_when_unambiguous() {
        let planner = camel_planner();
        let reads = |sql: &str| {
            planner
                .columns_read(&Rule::new("r", Path::new("r.sql"), sql, "history").unwrap())
                .unwrap()
        };
        assert_eq!(
            reads("SELECT sessionid FROM history WHERE bouncerates < 0.1"),
            ["BounceRates"]
        );
        assert_eq!(
            reads("SELECT h.SESSIONID FROM history h WHERE h.\"bounceRATES\" < 0.1"),
            ["BounceRates"]
        );
        // An exact match wins over the case-insensitive one.
        assert_eq!(reads("SELECT * FROM history WHERE score > 1"), ["score"]);
        assert_eq!(reads("SELECT * FROM history WHERE Score > 1"), ["Score"]);
        let e = plan_error(&planner, "SELECT * FROM history\nWHERE SCORE > 1");
        assert!(e.starts_with("r.sql:2:7:"), "{e}");
        assert!(e.contains("\"score\", \"Score\""), "{e}");
    }

    #[test]
    fn common_mistakes_get_a_located_hint() {
        let planner = camel_planner();
        let e = plan_error(&planner, "SELECT * FROM history WHERE Weekend = 'TRUE'");
        assert!(e.starts_with("r.sql:1:29:"), "{e}");
        assert!(e.contains("write Weekend = TRUE (no quotes)"), "{e}");
        let e = plan_error(&planner, "SELECT * FROM history WHERE 'no' <> weekend");
        assert!(e.contains("write Weekend <> FALSE"), "{e}");
        let e = plan_error(&planner, "SELECT *\nFROM history\nWHERE Month = \"May\"");
        assert!(e.starts_with("r.sql:3:15:"), "{e}");
        assert!(e.contains("write it in single quotes: 'May'"), "{e}");
        let e = plan_error(&planner, "SELECT * FROM history WHERE BounceRate > 0");
        assert!(e.contains("(did you mean \"BounceRates\"?)"), "{e}");
        assert_eq!(
            crate::data::nearest_names("mnth", &["Month", "Weekend"]),
            ["Month"]
        );
        assert!(crate::data::nearest_names("zzzzzz", &["Month", "Weekend"]).is_empty());
    }

    #[test]
    fn planning_tells_which_columns_a_rule_reads() {
        let (table, _) = spend_table();
        let planner = RulePlanner::new(table.batch.schema(), "history", "customer_id").unwrap();
        let reads = |sql: &str| {
            planner
                .columns_read(&Rule::new("r", Path::new("r.sql"), sql, "history").unwrap())
                .unwrap()
        };
        // `SELECT *` passes every column through but reads only what it filters on.
        assert_eq!(reads("SELECT * FROM history WHERE spend > 10"), ["spend"]);
        assert_eq!(
            reads("SELECT customer_id FROM history"),
            Vec::<String>::new()
        );
        assert_eq!(
            reads(
                "SELECT * FROM history WHERE customer_id IN (SELECT customer_id FROM history WHERE city = 'city1')"
            ),
            ["city"]
        );
        assert_eq!(
            reads(
                "WITH t AS (SELECT customer_id, spend AS s FROM history) SELECT customer_id FROM t WHERE s > 3"
            ),
            ["spend"]
        );
        assert_eq!(
            reads("SELECT customer_id FROM history ORDER BY spend DESC LIMIT 5"),
            ["spend"]
        );
        assert_eq!(
            reads(
                "SELECT * FROM history WHERE spend > (SELECT AVG(spend) FROM history WHERE city <> 'x')"
            ),
            ["city", "spend"]
        );
        // Planning errors come out located, before any data is read.
        let e = planner
            .columns_read(
                &Rule::new(
                    "r",
                    Path::new("r.sql"),
                    "SELECT *\nFROM history WHERE spnd > 1",
                    "history",
                )
                .unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.sql:2:20:"), "{e}");
        let e = planner
            .columns_read(
                &Rule::new(
                    "r",
                    Path::new("r.sql"),
                    "SELECT spend FROM history",
                    "history",
                )
                .unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("no id column"), "{e}");
        let label = reads_label_error(
            &Rule::new(
                "r",
                Path::new("r.sql"),
                "SELECT *\nFROM history\nWHERE  spend > 3 AND converted = 1",
                "history",
            )
            .unwrap(),
            "converted",
        )
        .to_string();
        assert!(
            label.starts_with("r.sql:3:22: the rule reads the label column \"converted\""),
            "{label}"
        );
    }

    fn check(sql: &str) -> std::result::Result<(), String> {
        validate(Path::new("r.sql"), sql, "history")
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_plain_selects() {
        check("SELECT * FROM history WHERE age BETWEEN 25 AND 40").unwrap();
        check("select customer_id from history where job in ('admin.', 'x');").unwrap();
        assert!(
            check("select * from History").is_err(),
            "names are matched as written"
        );
        check("WITH young AS (SELECT * FROM history WHERE age < 30) SELECT * FROM young").unwrap();
        check("SELECT * FROM history h WHERE h.balance > (SELECT AVG(balance) FROM history)")
            .unwrap();
    }

    #[test]
    fn rejects_writes_and_multiple_statements() {
        let e = check("DELETE FROM history").unwrap_err();
        assert!(e.contains("r.sql:1:1") && e.contains("DELETE"), "{e}");
        let e = check("SELECT * FROM history;\nSELECT 1 FROM history").unwrap_err();
        assert!(e.contains("r.sql:2:1") && e.contains("2 statements"), "{e}");
        let e = check("CREATE TABLE x AS SELECT * FROM history").unwrap_err();
        assert!(e.contains("CREATE"), "{e}");
        let e = check("SELECT * INTO copy FROM history").unwrap_err();
        assert!(e.contains("INTO"), "{e}");
    }

    #[test]
    fn rejects_other_tables_and_table_functions() {
        let e = check("SELECT * FROM secrets").unwrap_err();
        assert!(e.contains("unknown table secrets"), "{e}");
        let e = check("SELECT * FROM read_csv('/etc/passwd')").unwrap_err();
        assert!(e.contains("table function"), "{e}");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = check("SELECT *\nFROM history\nWHERE age >").unwrap_err();
        assert!(e.starts_with("r.sql:3:"), "{e}");
        assert!(e.contains("syntax error"), "{e}");
    }

    #[test]
    fn locates_words() {
        assert_eq!(
            locate_word("SELECT *\nFROM t WHERE agee > 3", "agee"),
            Some((2, 14))
        );
    }
}
