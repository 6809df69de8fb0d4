//! The simulator source for `watch --scenario`/`--replay`: run one seed once, recording what each
//! client did over time (waiting, holding, believing it holds after the servers let go, paused,
//! cut off), every write to the fenced resource, the faults and the checker's findings. The
//! dashboard then plays the recording back ([`crate::lanes::Playback`]).

use std::time::Instant;

use leasehold_sim::world::ClientActivity;
use leasehold_sim::{SimConfig, World, replay_command, run_seed};

use crate::lanes::{
    Activity, FaultMark, Finding, LockSample, Recording, Sample, SimEvent, WriteTick,
};

/// Samples per run at most (the lanes need no more; writes and events keep exact times).
const MAX_SAMPLES: u64 = 6_000;

fn activity(a: ClientActivity) -> Activity {
    match a {
        ClientActivity::Idle => Activity::Idle,
        ClientActivity::Waiting => Activity::Waiting,
        ClientActivity::Holding => Activity::Holding,
        ClientActivity::Believing => Activity::Believing,
    }
}

/// `c<client> token <token>` as the simulator's live log writes it.
fn parse_write(detail: &str) -> Option<(usize, u64)> {
    let mut it = detail.split_whitespace();
    let c = it.next()?.strip_prefix('c')?.parse().ok()?;
    let t = it.nth(1)?.parse().ok()?;
    Some((c, t))
}

/// Record `seed` of `cfg`.
///
/// # Errors
/// The simulator's (an invalid configuration, a seed too large to check).
pub fn record(cfg: &SimConfig, seed: u64) -> Result<Recording, String> {
    let wall = Instant::now();
    let promised = cfg.promised();
    let checked = run_seed(cfg, seed)?;
    let mut world = World::new(cfg.clone(), seed, false)?;
    world.set_live(true);
    let start = world.now_ns();
    let end = world.end_ns();
    let step = (end.saturating_sub(start) / MAX_SAMPLES).max(1_000_000);
    let mut rec = Recording {
        scenario: cfg.scenario.clone(),
        seed,
        replay: replay_command(cfg, seed),
        start_ns: start,
        end_ns: end,
        step_ns: step,
        faults: world
            .fault_schedule()
            .iter()
            .map(|f| FaultMark {
                t_ns: f.at,
                end_ns: f.at + f.fault.effect_len(),
                label: format!("{:?}", f.fault),
            })
            .collect(),
        ..Recording::default()
    };
    let mut t = start;
    loop {
        let running = world.step_until(t);
        rec.samples.push(
            world
                .client_view()
                .into_iter()
                .map(|c| Sample {
                    activity: activity(c.activity),
                    paused: c.paused,
                    cut_off: c.cut_off,
                })
                .collect(),
        );
        rec.locks.push(
            world
                .lock_view()
                .into_iter()
                .map(|l| LockSample {
                    holder: l.holder,
                    token: l.token,
                    ttl_ms: l.ttl_ms,
                    slots: (l.slots_held, l.slots_total),
                    waiters: l.waiters,
                })
                .collect(),
        );
        for l in world.drain_log() {
            if let ("write" | "write_rejected", Some((client, token))) =
                (l.kind, parse_write(&l.detail))
            {
                rec.writes.push(WriteTick {
                    t_ns: l.t_ns,
                    client,
                    token,
                    accepted: l.kind == "write",
                });
            }
            rec.events.push(SimEvent {
                t_ns: l.t_ns,
                lock: l.lock,
                kind: l.kind.to_owned(),
                detail: l.detail,
            });
        }
        if !running || t >= end {
            break;
        }
        t = (t + step).min(end);
    }
    rec.findings = checked
        .violations
        .iter()
        .map(|v| Finding {
            t_ns: v.at,
            property: v.property.name().to_owned(),
            detail: v.detail.clone(),
            bug: promised.contains(&v.property),
        })
        .collect();
    rec.findings.sort_by_key(|f| f.t_ns);
    rec.sim_events = checked.events;
    rec.sim_wall_ms = u64::try_from(wall.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(rec)
}

/// The first seed in `0..limit` whose run has a finding or bug (what a newcomer should watch),
/// else seed 0.
#[must_use]
pub fn interesting_seed(cfg_for: impl Fn(u64) -> Option<SimConfig>, limit: u64) -> u64 {
    (0..limit)
        .find(|s| {
            cfg_for(*s)
                .and_then(|c| run_seed(&c, *s).ok())
                .is_some_and(|r| !r.violations.is_empty())
        })
        .unwrap_or(0)
}

fn parse_dur(s: &str) -> Option<std::time::Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "us" | "µs" => std::time::Duration::from_micros(n),
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.checked_mul(60)?),
        "h" => std::time::Duration::from_secs(n.checked_mul(3_600)?),
        _ => return None,
    })
}

/// Parse a replay line printed by `leasehold sim` (`leasehold sim --scenario gc-pause --seed 471
/// --clients 5 ...`) into its configuration and seed.
///
/// # Errors
/// What is wrong with the line, naming the flag.
pub fn parse_replay(line: &str) -> Result<(SimConfig, u64), String> {
    let owned: Vec<&str> = line.split_whitespace().collect();
    let mut words: &[&str] = &owned;
    if words.first() == Some(&"leasehold") {
        words = &words[1..];
    }
    if words.first() == Some(&"sim") {
        words = &words[1..];
    }
    let mut o = leasehold_sim::Overrides::default();
    let (mut scenario, mut seed) = (None, None);
    let mut it = words.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag} {value:?} is not valid");
        match *flag {
            "--scenario" => scenario = Some((*value).to_owned()),
            "--seed" => seed = Some(value.parse::<u64>().map_err(|_| bad())?),
            "--clients" => o.clients = Some(value.parse().map_err(|_| bad())?),
            "--locks" => o.locks = Some(value.parse().map_err(|_| bad())?),
            "--duration" => o.duration = Some(parse_dur(value).ok_or_else(bad)?),
            "--slot-wait" => o.slot_wait = Some(parse_dur(value).ok_or_else(bad)?),
            "--fencing" => {
                o.fencing = Some(match *value {
                    "on" => leasehold_sim::Fencing::On,
                    "writes" => leasehold_sim::Fencing::Writes,
                    "off" => leasehold_sim::Fencing::Off,
                    _ => return Err(bad()),
                });
            }
            "--notifications" => {
                o.notifications = Some(match *value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad()),
                });
            }
            "--drop-faults" => {
                o.drop_faults = value
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| x.parse::<usize>().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("{other} is not a flag of a replay line")),
        }
    }
    let scenario = scenario.ok_or("the line names no --scenario")?;
    let seed = seed.ok_or("the line names no --seed")?;
    let cfg = leasehold_sim::config_for(&scenario, seed, &o)?;
    Ok((cfg, seed))
}

/// The live simulator source (`leasehold watch` without Redis): run `scenario` seed after seed in
/// real time, sending lock rows, event lines and the simulator's figures, until the UI goes away.
/// `origin` is the UI clock's zero.
pub async fn run_live(
    scenario: String,
    tx: tokio::sync::mpsc::UnboundedSender<crate::model::Input>,
    origin: Instant,
) {
    use crate::model::{EventLine, Input, SimStats};
    let mut seed = 0u64;
    loop {
        let Ok(cfg) =
            leasehold_sim::config_for(&scenario, seed, &leasehold_sim::Overrides::default())
        else {
            return;
        };
        let Ok(mut world) = World::new(cfg, seed, false) else {
            return;
        };
        world.set_live(true);
        let sim_start = world.now_ns();
        let wall_start = Instant::now();
        let (mut last_events, mut last_wall) = (0u64, Instant::now());
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let target =
                sim_start + u64::try_from(wall_start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let running = world.step_until(target);
            let rows = world
                .lock_view()
                .into_iter()
                .map(|l| crate::layout::LockRow {
                    name: format!("lock{}", l.lock),
                    layout: crate::layout::Layout::Leasehold,
                    holder: l.holder.map(|c| format!("c{c}")),
                    token: l.token,
                    ttl_ms: Some(l.ttl_ms),
                    keys_held: l.slots_held,
                    keys_total: l.slots_total,
                    waiters: Some(l.waiters),
                    prefix: String::new(),
                    held: Vec::new(),
                })
                .collect();
            let now_ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(0);
            let lines: Vec<EventLine> = world
                .drain_log()
                .into_iter()
                .map(|l| EventLine {
                    at_ms: now_ms.saturating_sub(target.saturating_sub(l.t_ns) / 1_000_000),
                    lock: l.lock.map(|i| format!("lock{i}")).unwrap_or_default(),
                    kind: l.kind.to_owned(),
                    detail: format!("seed {seed}: {}", l.detail),
                })
                .collect();
            let now = world.now_ns();
            let events = world.events_processed();
            let dt = last_wall.elapsed().as_secs_f64().max(1e-3);
            #[allow(clippy::cast_precision_loss)]
            let events_per_sec = events.saturating_sub(last_events) as f64 / dt;
            (last_events, last_wall) = (events, Instant::now());
            let stats = SimStats {
                scenario: scenario.clone(),
                seed,
                events_per_sec,
                virtual_ms: now.saturating_sub(sim_start) / 1_000_000,
                wall_ms: u64::try_from(wall_start.elapsed().as_millis()).unwrap_or(u64::MAX),
                faults_active: world
                    .fault_schedule()
                    .iter()
                    .filter(|f| f.at <= now && now < f.at + f.fault.effect_len().max(1))
                    .map(|f| format!("{:?}", f.fault))
                    .collect(),
            };
            let sent = tx
                .send(Input::Snapshot {
                    rows,
                    commands: 0,
                    rtt: std::time::Duration::ZERO,
                })
                .is_ok()
                && tx.send(Input::SimStats(stats)).is_ok()
                && (lines.is_empty() || tx.send(Input::Events(lines)).is_ok());
            if !sent {
                return;
            }
            if !running {
                break;
            }
        }
        seed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_lines_round_trip() {
        let cfg = leasehold_sim::config_for(
            "gc-pause",
            471,
            &leasehold_sim::Overrides {
                clients: Some(3),
                fencing: Some(leasehold_sim::Fencing::Writes),
                drop_faults: vec![0, 2],
                ..leasehold_sim::Overrides::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let line = replay_command(&cfg, 471);
        let (back, seed) = parse_replay(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(seed, 471);
        assert_eq!(replay_command(&back, seed), line);
        assert!(parse_replay("leasehold sim --scenario gc-pause").is_err());
        assert!(parse_replay("leasehold sim --scenario nope --seed 1").is_err());
        assert!(
            parse_replay("leasehold sim --scenario gc-pause --seed 1 --bogus 3")
                .is_err_and(|e| e.contains("--bogus"))
        );
    }
}
