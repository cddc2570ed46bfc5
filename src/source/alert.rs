//! Sources ← alert: the administrator (`[admin] email`) is told once when a source has failed
//! `alert_after` runs in a row, and once more when it works again — by email, straight to the
//! mail server (an alert about the service is not a notice of the outbox).

use super::SyncReport;
use crate::channels::EmailChannel;
use crate::clock::Clock;
use crate::config::Config;
use crate::render::Rendered;

/// Sends the alert `report` calls for, if any; a failure to send is logged, never raised.
pub async fn tell_admin(config: &Config, report: &SyncReport, clock: &Clock) {
    let to = config.admin.email.trim();
    let Some(source) = config.sources.iter().find(|s| s.name == report.source) else { return };
    if to.is_empty() || report.dry_run {
        return;
    }
    let threshold = i64::from(source.alert_after.max(1));
    let subject = if report.refused() && report.failures_in_row == threshold {
        format!("[nhacviec] Nguồn dữ liệu \"{}\" lỗi {threshold} lần liên tiếp", report.source)
    } else if !report.refused() && report.failures_before >= threshold {
        format!("[nhacviec] Nguồn dữ liệu \"{}\" đã hoạt động trở lại", report.source)
    } else {
        return;
    };
    let mut text = format!("{subject}.\n\nKết quả lần chạy gần nhất: {}.\n", report.result);
    for problem in report.problems.iter().take(20) {
        text.push_str(&format!("  - {problem}\n"));
    }
    text.push_str("\nXem chi tiết: nhacviec sources\n");
    let html = format!("<pre>{}</pre>", text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"));
    let sent = async {
        let email = EmailChannel::from_config(config).map_err(|e| e.to_string())?;
        let domain = config.from.email.domain().to_string();
        let message_id = format!("<{}@{domain}>", clock.new_id());
        let raw = email
            .compose_to(
                "Quản trị hệ thống",
                to,
                Rendered { subject: subject.clone(), text, html },
                &message_id,
                clock.now_in(config.timezone),
            )
            .map_err(|e| e.to_string())?;
        email.send(&message_id, to, &raw).await.map_err(|e| e.to_string())
    };
    match sent.await {
        Ok(()) => tracing::info!(source = %report.source, to, "administrator told: {subject}"),
        Err(e) => tracing::error!(source = %report.source, to, error = %e, "cannot tell the administrator"),
    }
}
