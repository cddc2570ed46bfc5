//! Bench ← input: the synthetic agency (units, people, directives) at any size, generated
//! deterministically in chunks and imported through the store's bulk path.
use super::*;

/// Units, people and who can be assigned work.
pub(crate) struct Agency {
    pub(crate) units: Vec<Unit>,
    pub(crate) people: Vec<Person>,
    /// (officer code, unit code), in code order.
    pub(crate) officers: Vec<(String, String)>,
}

pub(crate) const SURNAMES: &[&str] = &["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ"];
pub(crate) const MIDDLE: &[&str] = &["Văn", "Thị", "Minh", "Thanh", "Hữu", "Ngọc", "Quốc", "Thu"];
pub(crate) const GIVEN: &[&str] =
    &["Liên", "Hùng", "An", "Phúc", "Ly", "Dũng", "Hạnh", "Tâm", "Khoa", "Nga", "Sơn", "Trang"];
pub(crate) const VERBS: &[&str] = &[
    "Kiểm tra, xác minh",
    "Thanh tra việc",
    "Giải quyết đơn khiếu nại về",
    "Báo cáo kết quả",
    "Rà soát, đề xuất xử lý",
    "Tham mưu trả lời kiến nghị về",
    "Đôn đốc thực hiện kết luận về",
    "Xây dựng kế hoạch kiểm tra",
];
pub(crate) const OBJECTS: &[&str] = &[
    "quản lý, sử dụng đất đai",
    "đầu tư xây dựng cơ bản",
    "thu, chi ngân sách",
    "công tác cán bộ",
    "bồi thường, hỗ trợ tái định cư",
    "mua sắm tài sản công",
    "cấp giấy chứng nhận quyền sử dụng đất",
    "phòng, chống tham nhũng",
];
pub(crate) const PLACES: &[&str] = &[
    "tại UBND huyện Châu Thành",
    "tại Sở Tài nguyên và Môi trường",
    "tại UBND thành phố",
    "tại Ban Quản lý dự án",
    "tại Sở Xây dựng",
    "tại UBND xã Tân Phú",
];
pub(crate) const SOURCES: &[&str] = &[
    "KL giao ban 08/2025",
    "Công văn 1234/UBND-NC",
    "Đơn công dân ngày 12/6/2025",
    "QĐ 76/QĐ-TTr",
    "Kế hoạch thanh tra năm 2025",
];

pub(crate) fn person_name(i: usize) -> String {
    format!("{} {} {}", SURNAMES[i % SURNAMES.len()], MIDDLE[(i / 7) % MIDDLE.len()], GIVEN[(i / 3) % GIVEN.len()])
}

impl Agency {
    /// Ten officers per unit (each unit with a head), a block leader per five units, and
    /// one chief; one officer in a hundred inactive (their reminders go to the unit head).
    pub(crate) fn new(officers: usize, all_active: bool) -> Agency {
        let unit_count = officers.div_ceil(10).max(1);
        let leader_count = unit_count.div_ceil(5);
        let mut units = vec![Unit {
            code: "LD".into(),
            name: "Lãnh đạo Thanh tra".into(),
            head: Some("chanh".into()),
            leader: Some("chanh".into()),
        }];
        let person = |code: String, i: usize, title: &str, unit: String, role: Role, active: bool| Person {
            email: format!("{code}@thanhtra.example.gov.vn"),
            code,
            name: person_name(i),
            title: title.into(),
            unit,
            role,
            active,
            reach: Default::default(),
        };
        let mut people = vec![person("chanh".into(), 0, "Chánh Thanh tra", "LD".into(), Role::Chief, true)];
        for l in 0..leader_count {
            people.push(person(format!("pct{l:04}"), l + 1, "Phó Chánh Thanh tra", "LD".into(), Role::Leader, true));
        }
        for u in 0..unit_count {
            let code = format!("P{u:04}");
            units.push(Unit {
                code: code.clone(),
                name: format!("Phòng Nghiệp vụ {}", u + 1),
                head: Some(format!("tp{u:04}")),
                leader: Some(format!("pct{:04}", u / 5)),
            });
            people.push(person(format!("tp{u:04}"), u + 3, "Trưởng phòng", code, Role::Head, true));
        }
        let mut roster = Vec::with_capacity(officers);
        for i in 0..officers {
            let code = format!("cv{i:06}");
            let unit = format!("P{:04}", i / 10);
            let active = all_active || i % 100 != 99;
            people.push(person(code.clone(), i + 11, "Thanh tra viên", unit.clone(), Role::Officer, active));
            roster.push((code, unit));
        }
        Agency { units, people, officers: roster }
    }
}

/// Deterministic directives: `window` of `total` are open inside the due window (upcoming,
/// due today, overdue, plus a few unassigned, undated or recently closed), spread evenly
/// through the codes; the rest are completed, cancelled or closed long ago, or due far
/// ahead — history the planner never needs to see.
pub(crate) struct Generator<'a> {
    agency: &'a Agency,
    profile: Profile,
    total: u64,
    window: u64,
    next: u64,
    rng: fastrand::Rng,
    today: NaiveDate,
    /// Due dates by ladder position: index p + 3 for p in -3..=60.
    by_position: Vec<NaiveDate>,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(
        agency: &'a Agency,
        profile: Profile,
        total: u64,
        window: u64,
        calendar: &Calendar,
        today: NaiveDate,
    ) -> Self {
        let mut by_position = Vec::new();
        for p in -3i32..=60 {
            let mut d = today;
            for _ in 0..p.unsigned_abs() {
                d = if p < 0 { calendar.next_working_day(d) } else { calendar.previous_working_day(d) };
            }
            by_position.push(d);
        }
        Generator { agency, profile, total, window, next: 0, rng: fastrand::Rng::with_seed(7), today, by_position }
    }

    fn days(&self, d: NaiveDate, n: u64, back: bool) -> NaiveDate {
        if back {
            d.checked_sub_days(Days::new(n)).unwrap_or(d)
        } else {
            d.checked_add_days(Days::new(n)).unwrap_or(d)
        }
    }

    pub(crate) fn next_chunk(&mut self, n: usize) -> Vec<Directive> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n && self.next < self.total {
            let i = self.next;
            self.next += 1;
            out.push(self.directive(i));
        }
        out
    }

    fn directive(&mut self, i: u64) -> Directive {
        let officers = &self.agency.officers;
        let pick = if self.profile == Profile::Delivery {
            usize::try_from(i).unwrap_or(0) % officers.len()
        } else {
            self.rng.usize(..officers.len())
        };
        let (assignee, unit) = officers[pick].clone();
        let r = &mut self.rng;
        let title = format!(
            "{} {} {} (mã {i})",
            VERBS[r.usize(..VERBS.len())],
            OBJECTS[r.usize(..OBJECTS.len())],
            PLACES[r.usize(..PLACES.len())]
        );
        let kind = match r.u32(..100) {
            0..=49 => DirectiveKind::Task,
            50..=69 => DirectiveKind::Document,
            70..=89 => DirectiveKind::Petition,
            90..=94 => DirectiveKind::Enforcement,
            _ => DirectiveKind::Other,
        };
        let mut d = Directive {
            code: format!("NV-{i:08}"),
            kind,
            title,
            source: SOURCES[r.usize(..SOURCES.len())].to_string(),
            unit,
            assignee: Some(assignee),
            leader: None,
            assigned_on: None,
            due_on: None,
            status: if r.bool() { Status::Open } else { Status::InProgress },
            completed_on: None,
            closed_on: None,
            result: None,
            confidential: r.u32(..20) == 0,
        };
        // Bresenham: exactly `window` of `total`, evenly spread through the codes.
        let in_window = (i + 1) * self.window / self.total > i * self.window / self.total;
        if self.profile == Profile::Delivery {
            d.due_on = Some(self.by_position[2]); // T-1: one upcoming reminder each
        } else if in_window {
            self.in_window(&mut d);
        } else {
            self.history(&mut d);
        }
        if d.assigned_on.is_none() {
            let back = self.rng.u64(10..60);
            d.assigned_on = Some(self.days(d.due_on.unwrap_or(self.today), back, true));
        }
        d
    }

    fn position(&self, p: i32) -> NaiveDate {
        let index = usize::try_from(p + 3).unwrap_or(0).min(self.by_position.len() - 1);
        self.by_position[index]
    }

    fn in_window(&mut self, d: &mut Directive) {
        let roll = self.rng.u32(..1000);
        let p = match roll {
            0..=9 => {
                // Unassigned: the unit head hears about it.
                d.assignee = None;
                self.rng.i32(-3..=5)
            }
            10..=11 => {
                // No due date and no default rule: the unit head is asked to set one.
                d.assigned_on = Some({
                    let n = self.rng.u64(1..60);
                    self.days(self.today, n, true)
                });
                return;
            }
            12..=21 => {
                // Closed without completion within the lookback: the alarm.
                d.status = Status::Closed;
                d.closed_on = Some({
                    let n = self.rng.u64(0..29);
                    self.days(self.today, n, true)
                });
                d.due_on = Some({
                    let n = self.rng.u64(30..90);
                    self.days(self.today, n, true)
                });
                return;
            }
            22..=521 => self.rng.i32(-3..=-1),
            522..=621 => 0,
            622..=951 => self.rng.i32(1..=9),
            // Long overdue: every rung of the ladder, the chief's included.
            _ => self.rng.i32(10..=60),
        };
        d.due_on = Some(self.position(p));
    }

    fn history(&mut self, d: &mut Directive) {
        let roll = self.rng.u32(..100);
        let due = {
            let n = self.rng.u64(45..2000);
            self.days(self.today, n, true)
        };
        match roll {
            0..=59 => {
                d.status = Status::Completed;
                d.due_on = Some(due);
                d.completed_on = Some({
                    let n = self.rng.u64(0..15);
                    self.days(due, n, true)
                });
                d.result = Some("Đã hoàn thành, có báo cáo kết quả".into());
            }
            60..=69 => {
                d.status = Status::Cancelled;
                d.due_on = Some(due);
            }
            70..=77 => {
                d.status = Status::Closed;
                d.due_on = Some(due);
                d.closed_on = Some({
                    let n = self.rng.u64(60..2000);
                    self.days(self.today, n, true)
                });
            }
            _ => {
                d.due_on = Some({
                    let n = self.rng.u64(15..400);
                    self.days(self.today, n, false)
                });
                d.assigned_on = Some({
                    let n = self.rng.u64(0..30);
                    self.days(self.today, n, true)
                });
            }
        }
    }
}

/// Officers for a dataset: a tenth of the due window (about ten open items each in the
/// window), so the agency grows with the work in hand, not with its history.
pub(crate) fn officers_for(profile: Profile, total: u64, window: u64) -> usize {
    match profile {
        Profile::Delivery => usize::try_from(total).unwrap_or(usize::MAX).max(1),
        Profile::Agency => usize::try_from(window / 10).unwrap_or(usize::MAX).max(20),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parent::thousands;

    #[test]
    fn the_generator_puts_exactly_the_window_in_the_window_and_is_deterministic() {
        let calendar = Calendar::load(None).unwrap();
        let today = NaiveDate::from_ymd_opt(2025, 9, 16).unwrap();
        let agency = Agency::new(officers_for(Profile::Agency, 5_000, 500), false);
        let all = |agency| {
            let mut g = Generator::new(agency, Profile::Agency, 5_000, 500, &calendar, today);
            let mut v = Vec::new();
            loop {
                let chunk = g.next_chunk(777);
                if chunk.is_empty() {
                    break v;
                }
                v.extend(chunk);
            }
        };
        let first = all(&agency);
        assert_eq!(first.len(), 5_000);
        assert_eq!(first, all(&agency));
        let horizon = calendar.add_working_days(today, 3);
        let near = first
            .iter()
            .filter(|d| match d.status {
                Status::Open | Status::InProgress => d.due_on.is_none_or(|due| due <= horizon),
                Status::Closed => d.closed_on.is_some_and(|c| c >= today - Days::new(30)),
                _ => false,
            })
            .count();
        assert_eq!(near, 500);
    }

    #[test]
    fn thousands_are_grouped_for_the_table() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
