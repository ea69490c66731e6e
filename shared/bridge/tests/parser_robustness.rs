//! The webhook and callout parsers on stable, without cargo-fuzz: the fuzz
//! seeds (`fuzz/seeds/<target>/`) and a few thousand deterministic byte-level
//! mutations of them go through the very checks the fuzz targets run
//! (`testkit::parser_checks`). A panic anywhere, a rejection that is
//! not the expected error value, or a broken invariant (a non-positive ticket
//! id, a signature accepted that is not the real HMAC, ...) fails the test,
//! which names the offending input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use testkit::parser_checks as harness;

/// Mutated inputs per target, on top of the seeds.
const MUTANTS: usize = 3000;

/// Fragments that steer mutations into the parsers' interesting corners.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b";",
    b"=",
    b"&",
    b"+",
    b"%",
    b"%ff",
    b"%3A",
    b"<",
    b">",
    b"</",
    b"/>",
    b"&amp;",
    b"<![CDATA[",
    b"0",
    b"-1",
    b"1.5",
    b"7.0",
    b"1e400",
    b"-0",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"null",
    b"true",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"\xc2\xa0",
    b"id",
    b"TicketID",
    b"ticket_id",
    b"\"Id\":",
    b"\"EntityType\":\"TicketNote\"",
    b"\"Fields\":{\"TicketID\":",
    b"\"SequenceNumber\":",
    b"LastActivityDate",
    b"zen:event-type:ticket.",
    b"zen:event-type:user.",
    b"zen:ticket:",
    b"\"detail\":{\"id\":",
    b"sha1=",
    b"SHA1=",
    b"Basic ",
    b"Bearer ",
    b"==",
    b"application/json",
    b"application/x-www-form-urlencoded",
    b"text/xml",
    b"2026-11-23T18:40:12Z",
    b"2026-11-23T18:46:00Z",
    b"+01:00",
    b"9999-12-31T23:59:60Z",
];

/// xorshift64*: small, deterministic and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Self {
        // FNV-1a of the target name: every target gets its own fixed stream.
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One to four byte-level edits of `seed`, sometimes spliced with another seed.
fn mutate(rng: &mut Rng, seed: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        let token = TOKENS[rng.below(TOKENS.len())];
        match rng.below(9) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 => data.insert(at, rng.next() as u8),
            3 => {
                let end = (at + 1 + rng.below(8)).min(data.len());
                data.drain(at..end);
            }
            4 | 5 => {
                data.splice(at..at, token.iter().copied());
            }
            6 => {
                let end = (at + 1 + rng.below(4)).min(data.len());
                data.splice(at..end, token.iter().copied());
            }
            7 => data.truncate(at),
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", dir.display());
    paths
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".to_owned())
}

/// Runs the seeds, then `MUTANTS` mutations, through `check`.
fn exercise(target: &str, check: fn(&[u8]) -> bool) {
    exercise_seeds(target, seeds(target), check);
}

/// [`exercise`] over seeds made here rather than read from `fuzz/seeds/`.
fn exercise_seeds(target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8]) -> bool) {
    let run = |input: &[u8]| {
        catch_unwind(AssertUnwindSafe(|| check(input))).unwrap_or_else(|payload| {
            panic!(
                "{target}: {}\ninput: {:?}",
                panic_message(payload.as_ref()),
                String::from_utf8_lossy(input)
            )
        })
    };
    for seed in &seeds {
        assert!(
            run(seed),
            "{target}: seed rejected: {:?}",
            String::from_utf8_lossy(seed)
        );
    }
    let mut rng = Rng::new(target);
    let (mut accepted, mut rejected) = (0_usize, 0_usize);
    for i in 0..MUTANTS {
        let input = mutate(&mut rng, &seeds[i % seeds.len()], &seeds);
        if run(&input) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    eprintln!("{target}: {MUTANTS} mutants, {accepted} accepted, {rejected} rejected");
    // The mutations must reach the rejection paths, or this test checks little.
    assert!(
        rejected >= MUTANTS / 10,
        "{target}: only {rejected} of {MUTANTS} mutants rejected"
    );
}

#[test]
fn zendesk_webhook() {
    exercise("zendesk_webhook", harness::zendesk_webhook);
}

#[test]
fn autotask_webhook() {
    exercise("autotask_webhook", harness::autotask_webhook);
}

#[test]
fn autotask_callout() {
    exercise("autotask_callout", harness::autotask_callout);
}

/// Callouts sent by GET: the form seeds' bodies as query strings.
#[test]
fn autotask_callout_query() {
    let queries: Vec<Vec<u8>> = seeds("autotask_callout")
        .into_iter()
        .filter(|seed| {
            seed.starts_with(b"application/x-www-form-urlencoded")
                || seed.starts_with(b"text/plain")
        })
        .map(|seed| {
            let newline = seed.iter().position(|b| *b == b'\n').unwrap();
            seed[newline + 1..].to_vec()
        })
        .collect();
    assert!(queries.len() >= 3, "{} form seeds", queries.len());
    exercise_seeds(
        "autotask_callout_query",
        queries,
        harness::autotask_callout_query,
    );
}

/// Webhook bodies full of what Autotask's .NET serializer escapes, signed
/// over the raw body and over the escaped form, and their mutations.
#[test]
fn autotask_webhook_signed_over_either_form() {
    let bodies = [
        r#"{"Action":"Update","Guid":"g","EntityType":"Ticket","Id":7001,"Fields":{"Title":"Tom & Jerry + \"friends\" <3>"},"EventTime":"2026-11-23T12:00:00Z","SequenceNumber":1,"PersonID":5}"#,
        r#"{"Action":"Create","EntityType":"TicketNote","Id":30001,"Fields":{"TicketID":"7001","Title":"Réseau coupé à l'accueil","Description":"`ps` + ü 😀"},"SequenceNumber":2}"#,
        r#"{"Action":"Update","EntityType":"Company","Id":17,"Fields":{"CompanyName":"Smith & Söhne"},"SequenceNumber":3}"#,
    ];
    let mut seeds = Vec::new();
    for body in bodies {
        for over in [body.as_bytes().to_vec(), dotnet_escaped(body)] {
            let mut input = format!("sha1={}\n", hook_signature(&over)).into_bytes();
            input.extend_from_slice(body.as_bytes());
            assert!(
                harness::autotask_webhook(&input),
                "refused: {}",
                String::from_utf8_lossy(&input)
            );
            seeds.push(input);
        }
    }
    exercise_seeds("autotask_webhook_escaped", seeds, harness::autotask_webhook);
}

/// The .NET-escaped form of `body`, written out by hand for the test bodies.
fn dotnet_escaped(body: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut inside = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                inside = !inside;
                out.push(c);
            }
            '\\' if inside && chars.peek() == Some(&'"') => {
                chars.next();
                out.push_str("\\u0022");
            }
            '&' | '<' | '>' | '\'' | '`' | '+' if inside => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c if inside && !c.is_ascii() => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.into_bytes()
}

fn hook_signature(over: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac =
        hmac::Hmac::<sha1::Sha1>::new_from_slice(harness::AUTOTASK_HOOK_SECRET.as_bytes()).unwrap();
    mac.update(over);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[test]
fn autotask_callout_credentials() {
    exercise(
        "autotask_callout_credentials",
        harness::autotask_callout_credentials,
    );
}

/// The checks themselves catch what they claim to: a forged or stale request
/// is rejected, not merely survived.
#[test]
fn checks_reject_forgeries() {
    let seed = &seeds("zendesk_webhook")[0];
    let newline = seed.iter().position(|b| *b == b'\n').unwrap();
    // Another (fresh) timestamp under the old signature.
    let mut forged = b"2026-11-23T18:40:13Z".to_vec();
    forged.extend_from_slice(&seed[newline..]);
    assert!(!harness::zendesk_webhook(&forged));
    // A correctly signed but stale request.
    let body = br#"{"ticket_id":5}"#;
    let stale = "2026-11-23T18:30:00Z";
    let mut request = format!(
        "{stale}\n{}\n",
        bridge::connectors::zendesk::sign(harness::ZENDESK_SECRET, stale, body)
    )
    .into_bytes();
    request.extend_from_slice(body);
    assert!(!harness::zendesk_webhook(&request));

    let wrong = base64_basic("callout-user:s3cret:with:colon");
    assert!(!harness::autotask_callout_credentials(wrong.as_bytes()));
    let right = base64_basic("callout-user:s3cret:with:colons");
    assert!(harness::autotask_callout_credentials(right.as_bytes()));

    let body = br#"{"EntityType":"Ticket","Id":3,"SequenceNumber":1}"#;
    let mut unsigned = b"sha1=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".to_vec();
    unsigned.extend_from_slice(body);
    assert!(!harness::autotask_webhook(&unsigned));

    // A callout naming no usable ticket is answered (and logged), an
    // unreadable one refused.
    assert!(harness::autotask_callout(b"application/json\n{\"id\":0}"));
    assert!(!harness::autotask_callout(b"application/json\n{\"id\":"));
    assert!(harness::autotask_callout(b"application/json\n{\"id\":1}"));
}

fn base64_basic(pair: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}
