//! The team's audience rules: one read-only SELECT per `.sql` file, checked with sqlparser before
//! anything runs, then run with DataFusion over the evaluation rows.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::{
    Query, Select, Spanned, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::data::{Ids, Table, clean_datafusion_error, runtime, text_array};
use crate::{Error, Result};

/// A rule file, read and checked.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The file's stem: `rules/young_urban.sql` is `young_urban`.
    pub name: String,
    pub file: PathBuf,
    pub sql: String,
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

/// Reads and checks a rule file against the table name rules may select from.
pub fn load_rule(file: &Path, table: &str) -> Result<Rule> {
    let sql = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(&sql).to_string();
    validate(file, &sql, table)?;
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    Ok(Rule {
        name,
        file: file.to_path_buf(),
        sql,
    })
}

fn rule_error(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Error {
    let location = if line > 0 {
        format!("{}:{line}:{column}", file.display())
    } else {
        file.display().to_string()
    };
    Error::Rule {
        location,
        message: message.into(),
    }
}

/// Exactly one statement, a query, reading only `table` (and its own CTEs), with no `INTO` and
/// no table functions.
pub fn validate(file: &Path, sql: &str, table: &str) -> Result<()> {
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
    Ok(())
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

/// A session with `table` registered as `name` in `partitions`, planned for `cores` threads.
fn rule_context(
    table: &Table,
    name: &str,
    cores: usize,
    partitions: Vec<Vec<arrow::array::RecordBatch>>,
) -> Result<SessionContext> {
    // Identifiers are matched as written: analysts copy column names such as `CoffeeHouse`
    // from their file's header, and folding them to lower case would make them unknown.
    let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(cores);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let ctx = SessionContext::new_with_config(config);
    let mem = MemTable::try_new(table.batch.schema(), partitions)
        .map_err(|e| Error::data(&table.path, e.to_string()))?;
    ctx.register_table(name, Arc::new(mem))
        .map_err(|e| Error::data(&table.path, e.to_string()))?;
    Ok(ctx)
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

/// Plans `rule` on `ctx`, with planning errors located at the offending identifier.
async fn plan_rule(ctx: &SessionContext, rule: &Rule) -> Result<DataFrame> {
    ctx.sql_with_options(&rule.sql, read_only())
        .await
        .map_err(|e| planning_error(rule, &e.to_string()))
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
        let ctx = rule_context(&empty, table, 1, vec![vec![]])?;
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
            let ids = df.select_columns(&[self.id_column.as_str()]).map_err(|e| {
                rule_error(&rule.file, 0, 0, clean_datafusion_error(&e.to_string()))
            })?;
            let (state, plan) = ids.into_parts();
            state
                .optimize(&plan)
                .map_err(|e| rule_error(&rule.file, 0, 0, clean_datafusion_error(&e.to_string())))
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
}

impl RuleRunner {
    /// Registers `table` under `name`; `ids` are its id values row by row.
    pub fn new(table: &Table, name: &str, id_column: &str, ids: &Ids) -> Result<RuleRunner> {
        Self::with_partition_rows(table, name, id_column, ids, RULE_PARTITION_ROWS)
    }

    fn with_partition_rows(
        table: &Table,
        name: &str,
        id_column: &str,
        ids: &Ids,
        partition_rows: usize,
    ) -> Result<RuleRunner> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Slices of `partition_rows` rows (zero-copy), so scans and filters run on every core.
        // A filter's audience is a set of rows: the order rows come back in does not matter, and
        // the slices do not depend on the machine. An empty table gets its one (empty) partition.
        let rows = table.batch.num_rows();
        let step = partition_rows.max(1);
        let partitions: Vec<Vec<_>> = (0..rows.max(1))
            .step_by(step)
            .map(|start| vec![table.batch.slice(start, step.min(rows - start))])
            .collect();
        let ctx = rule_context(table, name, cores, partitions)?;
        // Rules whose result can depend on the order partitions finish in run on one.
        let serial = rule_context(table, name, 1, vec![vec![table.batch.clone()]])?;
        Ok(RuleRunner {
            ctx,
            serial,
            id_column: id_column.to_string(),
            ids: ids.clone(),
        })
    }

    /// The rows a rule selects. The result must carry the id column.
    pub fn run(&self, rule: &Rule) -> Result<RuleAudience> {
        let (index, batches) = runtime().block_on(async {
            let mut df = plan_rule(&self.ctx, rule).await?;
            if order_sensitive(df.logical_plan()) {
                df = plan_rule(&self.serial, rule).await?;
            }
            // The plan's schema says whether the result names the id column, before it runs
            // and whether or not it returns rows.
            let index = id_position(&df, rule, &self.id_column)?;
            let batches = df.collect().await.map_err(|e| {
                rule_error(&rule.file, 0, 0, clean_datafusion_error(&e.to_string()))
            })?;
            Ok::<_, Error>((index, batches))
        })?;
        let mut rows = Vec::new();
        for batch in &batches {
            let ids =
                text_array(batch.column(index)).map_err(|e| rule_error(&rule.file, 0, 0, e))?;
            for id in ids.iter().flatten() {
                let row = self.ids.row(id).ok_or_else(|| {
                    rule_error(
                        &rule.file,
                        0,
                        0,
                        format!("the rule returned id {id:?}, which is not in the table"),
                    )
                })?;
                rows.push(row);
            }
        }
        rows.sort_unstable();
        rows.dedup();
        Ok(RuleAudience { rows })
    }
}

/// A planning error, located at the offending identifier when DataFusion names one.
fn planning_error(rule: &Rule, message: &str) -> Error {
    let message = clean_datafusion_error(message);
    let unknown = message
        .strip_prefix("No field named ")
        .map(|rest| rest.split(['.', ' ']).collect::<Vec<_>>())
        .and_then(|parts| parts.into_iter().find(|p| !p.is_empty()))
        .map(|s| s.trim_matches('"').to_string());
    let (line, column) = unknown
        .and_then(|name| locate_word(&rule.sql, &name))
        .unwrap_or((0, 0));
    let message = match message.split_once(". Valid fields are ") {
        Some((head, fields)) => {
            let columns: Vec<&str> = fields
                .trim_end_matches('.')
                .split(", ")
                .map(|f| f.rsplit('.').next().unwrap_or(f))
                .collect();
            format!("{head}; the columns are: {}", columns.join(", "))
        }
        None => message,
    };
    rule_error(&rule.file, line, column, message)
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
        use arrow::array::{Float64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let n = 1000;
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

    #[test]
    fn partitioned_tables_give_the_same_audiences() {
        let (table, ids) = spend_table();
        let rules = [
            "SELECT customer_id FROM history WHERE spend > (SELECT AVG(spend) FROM history)",
            "SELECT * FROM history WHERE city IN (SELECT city FROM history GROUP BY city ORDER BY COUNT(*) DESC, city LIMIT 3)",
            "SELECT customer_id FROM history ORDER BY spend DESC, customer_id LIMIT 25",
            "SELECT DISTINCT customer_id FROM history WHERE spend BETWEEN 10 AND 20 UNION ALL SELECT customer_id FROM history WHERE spend < 3",
        ];
        let one = RuleRunner::with_partition_rows(&table, "history", "customer_id", &ids, 1 << 20)
            .unwrap();
        for partition_rows in [1, 7, 333, 999, 1000] {
            let many = RuleRunner::with_partition_rows(
                &table,
                "history",
                "customer_id",
                &ids,
                partition_rows,
            )
            .unwrap();
            for sql in rules {
                let rule = Rule {
                    name: "r".into(),
                    file: PathBuf::from("r.sql"),
                    sql: sql.into(),
                };
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
            .run(&Rule {
                name: "r".into(),
                file: PathBuf::from("r.sql"),
                sql: rules[2].into(),
            })
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
        let runner = RuleRunner::new(&table, "history", "customer_id", &ids).unwrap();
        let run = |sql: &str| {
            runner.run(&Rule {
                name: "r".into(),
                file: PathBuf::from("r.sql"),
                sql: sql.into(),
            })
        };
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
        let runner =
            RuleRunner::with_partition_rows(&table, "history", "customer_id", &ids, 7).unwrap();
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
        let rule = Rule {
            name: "r".into(),
            file: PathBuf::from("r.sql"),
            sql: "SELECT customer_id FROM history WHERE spend < (SELECT SUM(spend) FROM history) / 480"
                .into(),
        };
        let one = RuleRunner::with_partition_rows(&table, "history", "customer_id", &ids, n)
            .unwrap()
            .run(&rule)
            .unwrap();
        let many =
            RuleRunner::with_partition_rows(&table, "history", "customer_id", &ids, 7).unwrap();
        for _ in 0..20 {
            assert_eq!(many.run(&rule).unwrap(), one);
        }
    }

    #[test]
    fn planning_tells_which_columns_a_rule_reads() {
        let (table, _) = spend_table();
        let planner = RulePlanner::new(table.batch.schema(), "history", "customer_id").unwrap();
        let reads = |sql: &str| {
            planner
                .columns_read(&Rule {
                    name: "r".into(),
                    file: PathBuf::from("r.sql"),
                    sql: sql.into(),
                })
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
            .columns_read(&Rule {
                name: "r".into(),
                file: PathBuf::from("r.sql"),
                sql: "SELECT *\nFROM history WHERE spnd > 1".into(),
            })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.sql:2:20:"), "{e}");
        let e = planner
            .columns_read(&Rule {
                name: "r".into(),
                file: PathBuf::from("r.sql"),
                sql: "SELECT spend FROM history".into(),
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("no id column"), "{e}");
        let label = reads_label_error(
            &Rule {
                name: "r".into(),
                file: PathBuf::from("r.sql"),
                sql: "SELECT *\nFROM history\nWHERE  spend > 3 AND converted = 1".into(),
            },
            "converted",
        )
        .to_string();
        assert!(
            label.starts_with("r.sql:3:22: the rule reads the label column \"converted\""),
            "{label}"
        );
    }

    fn check(sql: &str) -> std::result::Result<(), String> {
        validate(Path::new("r.sql"), sql, "history").map_err(|e| e.to_string())
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
