//! The audit trail: appended in batches, listed per tenant newest or oldest first with filters
//! and cursors, and swept by age.

use portico_store::{AuditQuery, AuditRecord, audit_id_bound, new_id_at};

use crate::support::Ctx;

fn event(tenant_id: &str, at: i64, action: &str, connection: Option<&str>) -> AuditRecord {
    AuditRecord {
        id: new_id_at(at, 0),
        tenant_id: tenant_id.to_owned(),
        at,
        principal: "key:k1".to_owned(),
        action: action.to_owned(),
        connection_id: connection.map(str::to_owned),
        connector_id: Some("c1".to_owned()),
        target: None,
        operation: Some("ListThings".to_owned()),
        method: Some("GET".to_owned()),
        path: Some("/things/{id}".to_owned()),
        outcome: "200".to_owned(),
        count: 3,
        latency_us: Some(1234),
        instance: "test".to_owned(),
    }
}

pub async fn audit_events_list_by_tenant_and_filter_with_cursors(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap();
    let globex = store.create_tenant("globex").await.unwrap();
    let base = 1_700_000_000_000;
    // Ids of one millisecond sort by their sequence, and all of them before the next one's.
    let ids: Vec<String> = (0..50).map(|i| new_id_at(base, i)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(new_id_at(base, 4095) < new_id_at(base + 1, 0));
    assert!(audit_id_bound(base) <= ids[0] && ids[49] < audit_id_bound(base + 1));
    let mut events: Vec<AuditRecord> = (0..450)
        .map(|i| event(&acme.id, base + i, if i % 3 == 0 { "call.proxy" } else { "call.operation" }, Some("conn1")))
        .collect();
    events.push(event(&acme.id, base + 500, "connection.created", Some("conn2")));
    events.push(event(&globex.id, base + 1, "call.proxy", Some("conn1")));
    store.append_audit(&events).await.unwrap();
    // A batch written again (a retry after a commit whose answer was lost) adds nothing.
    store.append_audit(&events[..10]).await.unwrap();

    // Newest first, in pages that meet exactly.
    let all = AuditQuery::default();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_audit(&acme.id, &all, cursor.as_deref(), 100).await.unwrap();
        seen.extend(page.items.iter().map(|e| e.at));
        let Some(next) = page.next else { break };
        cursor = Some(next);
    }
    assert_eq!(seen.len(), 451, "every event of the tenant once, none of another tenant's");
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(seen[0], base + 500);

    // Oldest first, filtered by action, connection and time.
    let query = AuditQuery {
        action: Some("call.proxy"),
        connection_id: Some("conn1"),
        since: Some(base + 30),
        until: Some(base + 60),
        oldest_first: true,
        ..AuditQuery::default()
    };
    let page = store.list_audit(&acme.id, &query, None, 200).await.unwrap();
    let times: Vec<i64> = page.items.iter().map(|e| e.at).collect();
    assert_eq!(times, (30..60).filter(|i| i % 3 == 0).map(|i| base + i).collect::<Vec<_>>());
    assert_eq!(page.items[0], events[30], "a record round-trips exactly");
    let by_principal = AuditQuery { principal: Some("key:other"), ..AuditQuery::default() };
    assert!(store.list_audit(&acme.id, &by_principal, None, 10).await.unwrap().items.is_empty());

    // The sweep deletes what is older than the bound, in batches, in its tenant only.
    assert_eq!(store.delete_audit_before(&acme.id, base + 100, 60).await.unwrap(), 60);
    assert_eq!(store.delete_audit_before(&acme.id, base + 100, 60).await.unwrap(), 40);
    assert_eq!(store.delete_audit_before(&acme.id, base + 100, 60).await.unwrap(), 0);
    let oldest = store.list_audit(&acme.id, &AuditQuery { oldest_first: true, ..all }, None, 1).await.unwrap();
    assert_eq!(oldest.items[0].at, base + 100);
    assert_eq!(store.list_audit(&globex.id, &all, None, 10).await.unwrap().items.len(), 1);
}
