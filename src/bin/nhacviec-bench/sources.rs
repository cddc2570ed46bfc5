//! Bench ← sources: a tracking sheet of `rows` directives as an .xlsx snapshot synced into a
//! generated agency (then synced again unchanged), and the same number of rows read from a
//! PostgreSQL table through a `sql` source — each timed, with its own peak resident memory.
use super::*;
use crate::child::{peak_rss_mb, rate};
use nhacviec::config::SourceSettings;
use nhacviec::source::sync_source;
use std::io::Write as _;

/// Rows of the sheet and of the table: the issue's 100,000, or a smoke run's few.
fn rows_for(total: u64) -> usize {
    if total <= 2_000 {
        2_000
    } else {
        100_000
    }
}

/// Peak resident memory counts from here on (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// An .xlsx workbook of `rows` directives, written by hand (a zip of XML, inline strings and
/// date cells), as a spreadsheet program saves a tracking sheet.
fn write_xlsx(path: &Path, rows: usize, units: &[Unit], officers: &[(String, String)]) -> anyhow::Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = SimpleFileOptions::default();
    let parts: [(&str, &str); 5] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Nhiệm vụ" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#,
        ),
        (
            "xl/styles.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#,
        ),
    ];
    for (name, text) in parts {
        zip.start_file(name, options)?;
        zip.write_all(text.as_bytes())?;
    }
    zip.start_file("xl/worksheets/sheet1.xml", options)?;
    let text = |s: &str| format!(r#"<c t="inlineStr"><is><t>{s}</t></is></c>"#);
    write!(
        zip,
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#
    )?;
    let header = ["Mã nhiệm vụ", "Trích yếu", "Đơn vị chủ trì", "Người thụ lý", "Hạn xử lý", "Tình trạng"];
    write!(zip, "<row>{}</row>", header.iter().map(|h| text(h)).collect::<String>())?;
    // Excel's serial day of 30/09/2025: days since 1899-12-30.
    let base = NaiveDate::from_ymd_opt(2025, 9, 30).unwrap_or_default();
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    for i in 0..rows {
        let (code, unit) = &officers[i % officers.len()];
        let unit_name = units.iter().find(|u| &u.code == unit).map_or(unit.as_str(), |u| u.name.as_str());
        let due = (base - epoch).num_days() + i64::try_from(i % 90).unwrap_or(0);
        write!(
            zip,
            r#"<row>{}{}{}{}<c s="1"><v>{due}</v></c>{}</row>"#,
            text(&format!("SHEET-{i:06}")),
            text(&format!("Nhiệm vụ theo dõi số {i} – rà soát, báo cáo kết quả thực hiện")),
            text(unit_name),
            text(code),
            text(if i % 3 == 0 { "Chưa thực hiện" } else { "Đang thực hiện" }),
        )?;
    }
    write!(zip, "</sheetData></worksheet>")?;
    zip.finish()?;
    Ok(())
}

fn source(name: &str, kind: &str, location: &str, query: &str) -> anyhow::Result<nhacviec::config::Source> {
    let toml = format!(
        r#"name = "{name}"
kind = "{kind}"
{location}
query = {query:?}
mode = "snapshot"
[columns]
"Mã nhiệm vụ" = "code"
"Trích yếu" = "title"
"Đơn vị chủ trì" = "unit"
"Người thụ lý" = "assignee"
"Hạn xử lý" = "due_on"
"Tình trạng" = "status"
[values.status]
"Chưa thực hiện" = "open"
"Đang thực hiện" = "in_progress"
"#
    );
    let settings: SourceSettings = toml::from_str(&toml)?;
    let mut sources = nhacviec::config::sources::validate(&[settings], chrono_tz::Asia::Ho_Chi_Minh)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sources.pop().context("no source")
}

pub(crate) async fn sources(app: &App, job: &Job, base: Measurement) -> anyhow::Result<Vec<Measurement>> {
    let rows = rows_for(job.total);
    let agency = crate::agency::Agency::new(crate::agency::officers_for(job.profile, job.total, job.window), true);
    let calendar = app.calendar().await?;
    let clock = nhacviec::clock::Clock::system();
    let dir = std::env::temp_dir().join(format!("nhacviec-bench-src-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let sheet = dir.join("so-theo-doi.xlsx");
    write_xlsx(&sheet, rows, &agency.units, &agency.officers)?;
    let size_mb = std::fs::metadata(&sheet)?.len() as f64 / 1e6;
    let xlsx = source("so-theo-doi", "file", &format!("path = {:?}", sheet.display().to_string()), "")?;
    let mut out = Vec::new();
    let mut measure =
        |label: &str, extra: &str, report: &nhacviec::source::SyncReport, seconds: f64, target: &str, limit: f64| {
            let mut m = base.clone();
            m.measurement = label.into();
            m.work = rows as u64;
            m.unit = "rows".into();
            m.seconds = seconds;
            m.rate = rate(rows as u64, seconds);
            m.peak_rss_mb = peak_rss_mb();
            m.detail = format!(
                "{rows} rows{extra}: {} — applied {}, rejected {}, changed {}",
                report.result, report.rows_applied, report.rows_rejected, report.changed
            );
            m.target = Some(target.into());
            m.met = Some(seconds <= limit && (label != "source_xlsx" || m.peak_rss_mb <= 150.0));
            out.push(m);
        };
    reset_peak();
    let started = Instant::now();
    let report = sync_source(&app.store, &xlsx, &calendar, &clock, false).await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.result == "ok", "xlsx sync: {:?}", report.problems.first());
    measure("source_xlsx", &format!(" in a {size_mb:.1} MB xlsx snapshot"), &report, seconds, "≤ 10 s, ≤ 150 MB", 10.0);
    reset_peak();
    let started = Instant::now();
    let report = sync_source(&app.store, &xlsx, &calendar, &clock, false).await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.result == "unchanged", "unchanged re-sync: {}", report.result);
    measure("source_unchanged", ", the same file again (skipped by its hash)", &report, seconds, "≤ 1 s", 1.0);

    // The same number of rows from a PostgreSQL table.
    use sqlx::Connection;
    let admin = std::env::var("NHACVIEC_BENCH_PG_ADMIN")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("nhacviec_bench_src_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await?;
    let url = format!("{}/{db}", admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b));
    let outcome = async {
        let mut src = sqlx::PgConnection::connect(&url).await?;
        sqlx::query(
            "CREATE TABLE nhiem_vu (\"Mã nhiệm vụ\" TEXT, \"Trích yếu\" TEXT, \"Đơn vị chủ trì\" TEXT,
                                    \"Người thụ lý\" TEXT, \"Hạn xử lý\" DATE, \"Tình trạng\" TEXT)",
        )
        .execute(&mut src)
        .await?;
        let officers: Vec<String> = agency.officers.iter().map(|(c, _)| c.clone()).collect();
        let units: Vec<String> = agency.officers.iter().map(|(_, u)| u.clone()).collect();
        sqlx::query(
            "INSERT INTO nhiem_vu SELECT 'SQL-' || lpad(i::text, 6, '0'), 'Văn bản đến số ' || i || ' – xử lý, trả lời',
                    ($1::text[])[1 + i % array_length($1::text[], 1)], ($2::text[])[1 + i % array_length($2::text[], 1)],
                    DATE '2025-09-30' + (i % 90)::int, CASE WHEN i % 3 = 0 THEN 'Chưa thực hiện' ELSE 'Đang thực hiện' END
               FROM generate_series(0, $3::bigint - 1) AS i",
        )
        .bind(&units)
        .bind(&officers)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .execute(&mut src)
        .await?;
        let _ = src.close().await;
        let sql = source("qlvb", "sql", &format!("url = {url:?}"), "SELECT * FROM nhiem_vu")?;
        reset_peak();
        let started = Instant::now();
        let report = sync_source(&app.store, &sql, &calendar, &clock, false).await?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(report.result == "ok", "sql sync: {:?}", report.problems.first());
        measure("source_sql", " of a PostgreSQL table", &report, seconds, "≤ 5 s", 5.0);
        anyhow::Ok(())
    }
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut conn).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    Ok(out)
}
