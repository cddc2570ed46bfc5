//! Messages as their recipients read them, through the real binary on the sample agency:
//! each role's voice (the officer's own work, a head's and a leader's đôn đốc, the chief's
//! chỉ đạo, a reminder redirected from an inactive officer, an unassigned item), subjects
//! that say whose work it is and never carry a confidential title, the headers every message
//! carries (parsed by a strict MIME parser), and Monday's single message to a leader.
//!
//! The rendered text and HTML of each role are kept in `tests/it/snapshots/` and compared
//! byte for byte; `NHACVIEC_UPDATE_SNAPSHOTS=1` rewrites them after a deliberate change
//! (then read them as the recipient would, and commit them).

use crate::support::{self, mime_check, Mail, Nhacviec, DEMO_AT};
use std::path::Path;

/// A Wednesday: no weekly digest, so leaders' and the chief's escalations go as reminders.
const WEDNESDAY: &str = "2022-09-07T08:00:00+07:00";
const REPLY_TO: &str = "Văn phòng Thanh tra tỉnh <vanphong@thanhtra.example.gov.vn>";

/// The sample agency imported afresh and one tick at `at`; every email written, checked.
fn sent_at(dir: &Path, at: &str) -> (Nhacviec, Vec<Mail>) {
    let maildir = dir.join("mail");
    let nv = Nhacviec::new(&format!("sqlite://{}", dir.join("nv.db").display()), dir)
        .with("NHACVIEC__MAIL__TRANSPORT", "file")
        .with("NHACVIEC__MAIL__FILE_DIR", maildir.to_str().unwrap())
        .with("NHACVIEC__MAIL__REPLY_TO", REPLY_TO);
    let examples = support::repo().join("examples");
    nv.ok(&[
        "import",
        examples.join("sample-agency.json").to_str().unwrap(),
        examples.join("sample-directives.csv").to_str().unwrap(),
    ]);
    nv.ok(&["tick", "--at", at]);
    let mut files: Vec<_> = std::fs::read_dir(&maildir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mails = files.iter().flat_map(|f| mime_check(f)).collect();
    (nv, mails)
}

fn to<'a>(mails: &'a [Mail], address: &str) -> Vec<&'a Mail> {
    mails.iter().filter(|m| m.to == [address.to_string()]).collect()
}

fn one<'a>(mails: &'a [Mail], address: &str, subject_starts: &str) -> &'a Mail {
    let found: Vec<&Mail> = to(mails, address)
        .into_iter()
        .filter(|m| m.subject.as_deref().is_some_and(|s| s.starts_with(subject_starts)))
        .collect();
    assert_eq!(found.len(), 1, "{address}: one message starting {subject_starts:?}: {found:#?}");
    found[0]
}

fn header<'a>(mail: &'a Mail, name: &str) -> &'a str {
    match mail.headers.get(name).map(Vec::as_slice) {
        Some([value]) => value,
        other => panic!("{}: header {name} once, got {other:?}", mail.file),
    }
}

/// Compares (or with NHACVIEC_UPDATE_SNAPSHOTS=1 writes) `name.txt` and `name.html`.
fn snapshot(name: &str, mail: &Mail) {
    let text = format!("Subject: {}\n\n{}", mail.subject.as_deref().unwrap(), mail.text.as_deref().unwrap());
    let html = mail.html.clone().unwrap();
    let dir = support::repo().join("tests/it/snapshots");
    for (file, now) in [(format!("{name}.txt"), text), (format!("{name}.html"), html)] {
        let path = dir.join(&file);
        if std::env::var_os("NHACVIEC_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &now).unwrap();
            continue;
        }
        let kept = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (NHACVIEC_UPDATE_SNAPSHOTS=1 writes it)", path.display()));
        if kept != now {
            let at = kept.lines().zip(now.lines()).position(|(a, b)| a != b).unwrap_or(0);
            panic!(
                "{file} changed at line {}:\n  kept: {:?}\n  now:  {:?}\n(NHACVIEC_UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change)",
                at + 1,
                kept.lines().nth(at),
                now.lines().nth(at)
            );
        }
    }
}

/// What every message of the service carries, whoever it is to.
fn check_headers(mail: &Mail) {
    assert_eq!(header(mail, "Auto-Submitted"), "auto-generated", "{}", mail.file);
    assert_eq!(header(mail, "X-Auto-Response-Suppress"), "All");
    assert!(header(mail, "List-Id").ends_with("<nhacviec.thanhtra.example.gov.vn>"), "{:?}", mail.headers);
    assert_eq!(header(mail, "Reply-To"), REPLY_TO);
    assert!(header(mail, "Date").ends_with("+0700"), "the agency's offset: {}", header(mail, "Date"));
    let text = mail.text.as_deref().unwrap();
    assert!(!text.contains("\n\n\n"), "one blank line between blocks:\n{text}");
    // The footer agrees with Reply-To.
    assert!(text.contains("xin gửi thư tới vanphong@thanhtra.example.gov.vn"), "{text}");
    assert!(!text.contains("không trả lời"), "{text}");
}

#[test]
fn each_role_reads_what_is_asked_of_it_and_monday_brings_a_leader_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let (nv, monday) = sent_at(dir.path(), DEMO_AT);
    monday.iter().for_each(check_headers);

    // The officer's own overdue work: the subject counts working days.
    let my = one(&monday, "my.ntd@thanhtra.example.gov.vn", "[Nhắc việc] Hạn 25/08/2022 (quá hạn 5 ngày làm việc) – ");
    assert!(my.text.as_deref().unwrap().contains("Đề nghị đồng chí khẩn trương thực hiện, cập nhật tiến độ"));
    snapshot("officer_own", my);

    // Confidential: the subject names the code only; the body, to the assignee, the title.
    let ngan = one(&monday, "ngan.ptt@thanhtra.example.gov.vn", "[Nhắc việc] ");
    assert_eq!(ngan.subject.as_deref(), Some("[Nhắc việc] Hạn 06/09/2022 – Nhiệm vụ KL08-2022-09 (mật)"));
    snapshot("officer_confidential", ngan);

    // The head: others' overdue work, đôn đốc, naming each assignee; never "thực hiện" as if it were hers.
    let head = one(&monday, "phuc.hv@thanhtra.example.gov.vn", "[Nhắc việc] Đôn đốc 05/09/2022: ");
    let text = head.text.as_deref().unwrap();
    assert!(text.contains("Đề nghị đồng chí đôn đốc đồng chí Ngô Thị Diễm My"), "{text}");
    assert!(!text.contains("khẩn trương thực hiện"), "{text}");
    snapshot("head_oversee", head);

    // Redirected from an inactive officer: says why it came, asks to assign again.
    let loc = one(&monday, "loc.cv@thanhtra.example.gov.vn", "[Nhắc việc] ");
    let text = loc.text.as_deref().unwrap();
    assert!(text.contains("Người thụ lý: Hồ Văn Vinh (không còn nhận thông báo)"), "{text}");
    assert!(text.contains("được chuyển tới đồng chí vì người thụ lý, đồng chí Hồ Văn Vinh, không còn nhận thông báo"));
    assert!(text.contains("phân công lại người thụ lý"), "{text}");
    snapshot("head_redirected", loc);

    // Unassigned, beside closed-without-result alarms: the head is asked to assign one and
    // to look into the others, in one closing request.
    let cvp = one(&monday, "bao.pq@thanhtra.example.gov.vn", "[Nhắc việc] Đôn đốc 05/09/2022: ");
    let text = cvp.text.as_deref().unwrap();
    assert!(
        text.contains("Đề nghị đồng chí phân công người thụ lý cho các nhiệm vụ chưa có người thụ lý; chỉ đạo,"),
        "{text}"
    );
    assert!(text.contains("chỉ đạo làm rõ việc kết thúc khi chưa có kết quả"), "{text}");
    snapshot("head_unassigned", cvp);

    // Monday: a block leader gets the digest, and the escalations it lists are left to it.
    let hung = to(&monday, "hung.nv@thanhtra.example.gov.vn");
    assert_eq!(hung.len(), 1, "{hung:#?}");
    assert!(hung[0].subject.as_deref().unwrap().starts_with("[Báo cáo tuần] Tuần 36/2022"));
    snapshot("leader_digest", hung[0]);
    let chief = to(&monday, "an.tm@thanhtra.example.gov.vn");
    assert_eq!(chief.len(), 1, "the chief too: {chief:#?}");
    let status = nv.status_json();
    assert!(status["counts"]["notices"].to_string().contains("superseded"), "{status}");

    let dir = tempfile::tempdir().unwrap();
    let (_, wednesday) = sent_at(dir.path(), WEDNESDAY);
    wednesday.iter().for_each(check_headers);
    // The leader and the chief: chỉ đạo, đôn đốc, and a subject unlike the officer's.
    let leader = one(&wednesday, "hung.nv@thanhtra.example.gov.vn", "[Nhắc việc] Đôn đốc");
    let text = leader.text.as_deref().unwrap();
    assert!(text.contains("Đề nghị đồng chí chỉ đạo, đôn đốc"), "{text}");
    assert!(!text.contains("khẩn trương thực hiện,"), "{text}");
    snapshot("leader_escalation", leader);
    let chief = one(&wednesday, "an.tm@thanhtra.example.gov.vn", "[Nhắc việc] Đôn đốc");
    snapshot("chief_escalation", chief);
    let officer = one(&wednesday, "yen.th@thanhtra.example.gov.vn", "[Nhắc việc] ");
    assert_ne!(officer.subject, chief.subject, "the escalation's subject differs from the assignee's");
    assert!(
        chief.subject.as_deref().unwrap().contains("Trịnh Hải Yến")
            || chief.subject.as_deref().unwrap().starts_with("[Nhắc việc] Đôn đốc 07/09/2022")
    );
}
