//! `psa-bridge demo`: starts the built-in sandboxes and two tenants, opens
//! Zendesk tickets with comments, adds an Autotask note, and prints what
//! arrived where and how long it took. Everything crosses real HTTP.

use std::time::{Duration, Instant};

use anyhow::bail;
use bridge::config::Mappings;
use bridge::repo::{LogLevel, Repo};
use sandbox::zendesk::NewTicket;

use crate::world::{wait_for, AutotaskEvents, TenantSpec, TenantWorld, World, WorldOptions};

const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A second tenant's tables differ from the defaults, to show they are per tenant.
pub fn globex_mappings() -> Mappings {
    let defaults = Mappings::default();
    let mut status = defaults.status.clone();
    status.insert("open".into(), "Dispatched".into());
    Mappings {
        priority: [
            ("urgent", "Critical"),
            ("high", "Critical"),
            ("normal", "High"),
            ("low", "Medium"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        status,
        ..defaults
    }
}

/// The two demo tenants: acme (REST webhooks, default tables) and globex
/// (extension callouts, its own tables, a default company).
pub fn demo_tenants() -> Vec<TenantSpec> {
    let acme = TenantSpec {
        exclude_api_user: true,
        ..TenantSpec::new("acme")
    };
    let globex = TenantSpec {
        mappings: globex_mappings(),
        events: AutotaskEvents::Callout,
        default_company: true,
        ..TenantSpec::new("globex")
    };
    vec![acme, globex]
}

/// The demo's ConnectWise tenant: northwind, with a default company.
pub fn connectwise_demo_tenant() -> TenantSpec {
    TenantSpec {
        default_company: true,
        ..TenantSpec::connectwise("northwind")
    }
}

struct Arrival {
    tenant: String,
    what: String,
    millis: u128,
}

/// The operator the demo creates for its console.
const DEMO_OPERATOR: &str = "operator@demo.example";

pub async fn run(options: WorldOptions, serve: bool) -> anyhow::Result<()> {
    println!(
        "psa-bridge demo: starting sandbox Zendesk + Autotask for tenants acme and globex, \
         Zendesk + ConnectWise for northwind"
    );
    println!(
        "  simulated API latency: {} ms per call",
        options.api_latency.as_millis()
    );
    let mut specs = demo_tenants();
    specs.push(connectwise_demo_tenant());
    let world = World::start(specs, options).await?;
    println!("  bridge listening on {}", world.bridge.base_url);
    for t in &world.tenants {
        match &t.connectwise {
            Some(cw) => println!(
                "  {}: Zendesk {}  ConnectWise {}  (events: POST {}/t/{}/{{zendesk,connectwise}})",
                t.id,
                t.zendesk.base_url(),
                cw.sandbox.site_url(),
                world.bridge.base_url,
                t.id
            ),
            None => println!(
                "  {}: Zendesk {}  Autotask {}  (events: POST {}/t/{}/{{zendesk,autotask}})",
                t.id,
                t.zendesk.base_url(),
                t.autotask.base_url(),
                world.bridge.base_url,
                t.id
            ),
        }
    }
    println!();

    let mut arrivals = Vec::new();
    let mut problems = Vec::new();
    for tenant in &world.tenants {
        if tenant.connectwise.is_some() {
            demo_connectwise_tenant(tenant, &mut arrivals, &mut problems).await;
        } else {
            demo_tenant(tenant, &mut arrivals, &mut problems).await?;
        }
    }

    println!("\nLatency, change in one system → visible in the other (includes webhook, queue, worker, API calls):");
    for a in &arrivals {
        println!("  {:9} {:55} {:>6} ms", a.tenant, a.what, a.millis);
    }
    let mut millis: Vec<u128> = arrivals.iter().map(|a| a.millis).collect();
    millis.sort_unstable();
    if !millis.is_empty() {
        println!(
            "  median {} ms, max {} ms over {} changes",
            millis[millis.len() / 2],
            millis[millis.len() - 1],
            millis.len()
        );
    }

    println!("\nSync log (what an admin sees):");
    for tenant in &world.tenants {
        for entry in Repo::new(world.store())
            .log_entries(&tenant.id, 20)
            .await?
            .iter()
            .rev()
        {
            let level = match entry.level {
                LogLevel::Info => "info ",
                LogLevel::Error => "ERROR",
            };
            println!(
                "  {} {} {:18} {:22} {}",
                tenant.id,
                level,
                entry.ticket.as_deref().unwrap_or("-"),
                entry.step,
                entry.message
            );
        }
    }
    if let Some(accounts) = &world.bridge.accounts {
        // A fresh random password each run: the demo's console is on
        // localhost only, but a fixed password would be one to guess.
        let password = format!("demo-{}", uuid::Uuid::new_v4().simple());
        accounts.create_operator(DEMO_OPERATOR, &password).await?;
        println!("\nAdmin console: {}/admin", world.bridge.base_url);
        println!("  sign in as {DEMO_OPERATOR} with password {password}");
        if let Some(outbox) = &world.console_outbox {
            println!("  mails it sends land in {}", outbox.display());
        }
        if !serve {
            println!(
                "  (it stops with the demo; `demo --serve` keeps it and the sandboxes running)"
            );
        }
    }
    if serve {
        println!("\nServing the sandboxes and the console until Ctrl-C.");
        tokio::signal::ctrl_c().await?;
    }
    world.bridge.stop().await;
    if !problems.is_empty() {
        bail!("demo failed: {}", problems.join("; "));
    }
    println!("\nDemo complete: every change arrived exactly once, with no echoes.");
    Ok(())
}

async fn demo_tenant(
    tenant: &TenantWorld,
    arrivals: &mut Vec<Arrival>,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let zd = &tenant.zendesk;
    let at = &tenant.autotask;
    let id = tenant.id.to_string();
    println!("[{id}] opening Zendesk tickets");

    let tickets = [
        (
            "Email bounces for the whole office",
            "Since 9am every mail to us bounces.",
            "urgent",
            Some("CL-100"),
        ),
        (
            "New laptop for Dana",
            "Dana starts Monday and needs a laptop.",
            "low",
            Some("CL-200"),
        ),
        (
            "VPN drops every hour",
            "The VPN disconnects hourly.",
            "normal",
            Some("CL-999"),
        ),
    ];
    let mut linked = Vec::new();
    for (subject, description, priority, cluster) in tickets {
        let started = Instant::now();
        let desk_id = zd.create_ticket(NewTicket {
            subject: subject.into(),
            description: description.into(),
            priority: Some(priority.into()),
            status: None,
            cluster_id: cluster.map(Into::into),
            requester_name: "Casey Customer".into(),
        });
        let created = wait_for(ARRIVAL_TIMEOUT, || {
            at.tickets()
                .into_iter()
                .find(|t| t.external_id.as_deref() == Some(&format!("zendesk:{desk_id}")))
        })
        .await;
        match created {
            Some(t) => {
                arrivals.push(Arrival {
                    tenant: id.clone(),
                    what: format!("Zendesk #{desk_id} created → Autotask {}", t.ticket_number),
                    millis: started.elapsed().as_millis(),
                });
                let company = tenant
                    .clusters
                    .iter()
                    .find(|(_, c)| *c == t.company_id)
                    .map(|(cluster, _)| format!("company of {cluster}"))
                    .unwrap_or_else(|| "default company".into());
                println!(
                    "  Zendesk #{desk_id} {:?} ({priority}, cluster {}) → Autotask {} \"{}\" status {} priority {} ({company})",
                    subject,
                    cluster.unwrap_or("-"),
                    t.ticket_number,
                    t.title,
                    label(at, "status", t.status),
                    label(at, "priority", t.priority),
                );
                linked.push((desk_id, t.id));
            }
            None => {
                let unresolved = cluster == Some("CL-999") && tenant.default_company.is_none();
                if unresolved {
                    println!(
                        "  Zendesk #{desk_id} {subject:?} (cluster CL-999): no configuration item matches and acme has no default company → not created, see the sync log"
                    );
                } else {
                    problems.push(format!("{id}: Zendesk #{desk_id} never reached Autotask"));
                }
            }
        }
    }

    let Some(&(desk_id, psa_id)) = linked.first() else {
        problems.push(format!("{id}: no ticket was linked"));
        return Ok(());
    };

    // Comments, one public and one internal, each timed to its note.
    for (body, public) in [
        ("Customer: it also affects the shared mailbox.", true),
        ("Agent note: probably the MX record change.", false),
    ] {
        let started = Instant::now();
        zd.add_comment(
            desk_id,
            if public {
                "Casey Customer"
            } else {
                "Ann Agent"
            },
            body,
            public,
        );
        let note = wait_for(ARRIVAL_TIMEOUT, || {
            at.notes(psa_id).into_iter().find(|n| n.description == body)
        })
        .await;
        match note {
            Some(n) => {
                arrivals.push(Arrival {
                    tenant: id.clone(),
                    what: format!(
                        "{} comment → Autotask note ({})",
                        if public { "public" } else { "internal" },
                        if n.publish == 2 {
                            "Internal Project Team"
                        } else {
                            "All Autotask Users"
                        }
                    ),
                    millis: started.elapsed().as_millis(),
                });
            }
            None => problems.push(format!("{id}: comment {body:?} never reached Autotask")),
        }
    }

    // A technician answers in Autotask.
    let started = Instant::now();
    let text = "Fixed the MX record; mail flows again.";
    at.add_note(psa_id, tenant.technician, "Resolution", text, false);
    let comment = wait_for(ARRIVAL_TIMEOUT, || {
        zd.comments(desk_id)
            .into_iter()
            .find(|c| c.body.contains(text))
    })
    .await;
    match comment {
        Some(c) => {
            arrivals.push(Arrival {
                tenant: id.clone(),
                what: "Autotask note → Zendesk comment".into(),
                millis: started.elapsed().as_millis(),
            });
            println!(
                "  Autotask note → Zendesk comment #{}: {:?}",
                c.id,
                c.body.replace('\n', " / ")
            );
        }
        None => problems.push(format!("{id}: the Autotask note never reached Zendesk")),
    }

    // Let any echo have its chance, then count.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let notes = at.notes(psa_id).len();
    let comments = zd.comments(desk_id).len();
    println!(
        "  [{id}] Zendesk #{desk_id}: {comments} comments (description, 2 comments, 1 from Autotask); Autotask ticket: {notes} notes (2 from Zendesk, 1 technician)"
    );
    if notes != 3 || comments != 4 {
        problems.push(format!(
            "{id}: expected 3 notes and 4 comments, found {notes} and {comments}"
        ));
    }
    Ok(())
}

/// The demo on a ConnectWise tenant: a ticket with its fields, a comment each
/// way, and the board status a technician sets coming back to Zendesk.
async fn demo_connectwise_tenant(
    tenant: &TenantWorld,
    arrivals: &mut Vec<Arrival>,
    problems: &mut Vec<String>,
) {
    let zd = &tenant.zendesk;
    let cw = tenant.connectwise.as_ref().expect("a ConnectWise tenant");
    let id = tenant.id.to_string();
    println!("[{id}] opening a Zendesk ticket (PSA: ConnectWise)");
    let started = Instant::now();
    let desk_id = zd.create_ticket(NewTicket {
        subject: "Printer on floor 2 offline".into(),
        description: "Nobody on floor 2 can print since this morning.".into(),
        priority: Some("high".into()),
        status: None,
        cluster_id: Some("CL-100".into()),
        requester_name: "Casey Customer".into(),
    });
    let reference = format!("zendesk:{desk_id}");
    let created = wait_for(ARRIVAL_TIMEOUT, || {
        cw.sandbox
            .tickets()
            .into_iter()
            .find(|t| t.external_xref.as_deref() == Some(reference.as_str()))
    })
    .await;
    let Some(ticket) = created else {
        problems.push(format!(
            "{id}: Zendesk #{desk_id} never reached ConnectWise"
        ));
        return;
    };
    arrivals.push(Arrival {
        tenant: id.clone(),
        what: format!("Zendesk #{desk_id} created → ConnectWise #{}", ticket.id),
        millis: started.elapsed().as_millis(),
    });
    println!(
        "  Zendesk #{desk_id} → ConnectWise #{} \"{}\" on board {} status {} priority {}",
        ticket.id, ticket.summary, ticket.board_id, ticket.status_id, ticket.priority_id
    );

    let started = Instant::now();
    let body = "Customer: the copier on floor 2 is affected too.";
    zd.add_comment(desk_id, "Casey Customer", body, true);
    let note = wait_for(ARRIVAL_TIMEOUT, || {
        cw.sandbox
            .notes(ticket.id)
            .into_iter()
            .find(|n| n.text.contains(body))
    })
    .await;
    match note {
        Some(_) => arrivals.push(Arrival {
            tenant: id.clone(),
            what: "public comment → ConnectWise Discussion note".into(),
            millis: started.elapsed().as_millis(),
        }),
        None => problems.push(format!("{id}: the comment never reached ConnectWise")),
    }

    let started = Instant::now();
    let text = "Replaced the print server's certificate; printing works.";
    cw.sandbox.add_note_as(
        cw.technician,
        ticket.id,
        text,
        sandbox::connectwise::NoteKind::Discussion,
    );
    let comment = wait_for(ARRIVAL_TIMEOUT, || {
        zd.comments(desk_id)
            .into_iter()
            .find(|c| c.body.contains(text))
    })
    .await;
    match comment {
        Some(c) => {
            arrivals.push(Arrival {
                tenant: id.clone(),
                what: "ConnectWise note → Zendesk comment".into(),
                millis: started.elapsed().as_millis(),
            });
            println!(
                "  ConnectWise note → Zendesk comment #{}: {:?}",
                c.id,
                c.body.replace('\n', " / ")
            );
        }
        None => problems.push(format!("{id}: the ConnectWise note never reached Zendesk")),
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let notes = cw.sandbox.notes(ticket.id).len();
    let comments = zd.comments(desk_id).len();
    println!(
        "  [{id}] Zendesk #{desk_id}: {comments} comments (description, 1 comment, 1 from ConnectWise); ConnectWise ticket: {notes} notes (description, 1 from Zendesk, 1 technician)"
    );
    if notes != 3 || comments != 3 {
        problems.push(format!(
            "{id}: expected 3 notes and 3 comments, found {notes} and {comments}"
        ));
    }
}

/// The picklist label of a value, for printing.
fn label(at: &sandbox::autotask::AutotaskSandbox, field: &str, value: i64) -> String {
    const LABELS: &[&str] = &[
        "New",
        "In Progress",
        "Complete",
        "Dispatched",
        "Waiting Customer",
        "Waiting Vendor",
        "Critical",
        "High",
        "Medium",
        "Low",
    ];
    LABELS
        .iter()
        .find(|l| at.picklist_value(field, l) == Some(value))
        .map(|l| (*l).to_owned())
        .unwrap_or_else(|| value.to_string())
}
