//! Filling hookd's PostgreSQL database through `psql`: rows are read back and written in
//! `COPY`'s text format (tab-separated, `\N` for NULL, backslash escapes), one `COPY … FROM
//! STDIN` per table and call.

use std::io::Write;
use std::process::{Command, Stdio};

use super::{Rows, Template};

fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

pub fn read_row(url: &str, table: &'static str, keys: &[(&str, &str)]) -> anyhow::Result<Template> {
    let columns: Vec<String> = psql(
        url,
        &format!(
            "SELECT column_name FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = '{table}'
             ORDER BY ordinal_position"
        ),
    )?
    .lines()
    .map(str::to_owned)
    .collect();
    let filter: Vec<String> = keys
        .iter()
        .map(|(column, value)| format!("{column} = {}", quote(value)))
        .collect();
    let line = psql(
        url,
        &format!(
            "COPY (SELECT * FROM {table} WHERE {} LIMIT 1) TO STDOUT",
            filter.join(" AND ")
        ),
    )?;
    let line = line.trim_end_matches('\n');
    anyhow::ensure!(!line.is_empty(), "no {table} row where {keys:?}");
    let values: Vec<Option<String>> = line.split('\t').map(unescape).collect();
    anyhow::ensure!(
        values.len() == columns.len(),
        "{table}: {} columns, {} values",
        columns.len(),
        values.len()
    );
    Ok(Template {
        table,
        columns,
        values,
    })
}

pub fn write(url: &str, tables: &[Rows<'_>]) -> anyhow::Result<()> {
    for rows in tables {
        let t = rows.template;
        let set = rows
            .set
            .iter()
            .map(|c| t.index_of(c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut text = String::with_capacity(rows.rows.len() * 256);
        for row in &rows.rows {
            for (i, value) in t.merge(&set, row).into_iter().enumerate() {
                if i > 0 {
                    text.push('\t');
                }
                match value {
                    None => text.push_str("\\N"),
                    Some(v) => escape_into(&mut text, v),
                }
            }
            text.push('\n');
        }
        let copy = format!("COPY {} ({}) FROM STDIN", t.table, t.columns.join(", "));
        let mut child = Command::new("psql")
            .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &copy])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("psql has no stdin"))?
            .write_all(text.as_bytes())?;
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "COPY {}: {}",
            t.table,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub fn settle(url: &str) -> anyhow::Result<u64> {
    // What autovacuum would reach on its own in a store that has been running a while.
    psql(
        url,
        "VACUUM (ANALYZE) message, delivery, attempt, application, endpoint",
    )?;
    Ok(psql(url, "SELECT pg_database_size(current_database())")?
        .trim()
        .parse()?)
}

/// A field of COPY's text format: `\N` is NULL; backslash escapes the rest.
fn unescape(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

pub fn query_int(url: &str, sql: &str) -> anyhow::Result<i64> {
    let out = psql(url, sql)?;
    let out = out.trim();
    Ok(match out {
        "t" => 1,
        "f" => 0,
        n => n.parse()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_round_trips() {
        let value = "a\tb\\c\nd";
        let mut escaped = String::new();
        escape_into(&mut escaped, value);
        assert!(!escaped.contains('\t') && !escaped.contains('\n'));
        assert_eq!(unescape(&escaped).as_deref(), Some(value));
        assert_eq!(unescape("\\N"), None);
    }
}
