//! Data keys and the sealed columns a key rotation re-seals: the store keeps bytes and
//! compares prefixes, never opens anything.

use portico_store::{DataKeyRecord, DataKeyState, Reseal, Rewrap, SealedBytes, SealedColumn, now_millis};

use crate::support::{Ctx, connection_record, connector_record, state_record, webhook_record};

fn data_key(id: &str, state: DataKeyState) -> DataKeyRecord {
    DataKeyRecord {
        id: id.to_owned(),
        wrapped: SealedBytes(format!("wrapped {id}").into_bytes()),
        state,
        created_at: now_millis(),
    }
}

fn states(keys: &[DataKeyRecord]) -> Vec<(&str, DataKeyState)> {
    keys.iter().map(|key| (key.id.as_str(), key.state)).collect()
}

pub async fn the_first_data_key_is_made_once_and_a_rotation_retires_the_current_one(ctx: &Ctx) {
    let store = ctx.store();
    assert!(store.data_keys().await.unwrap().is_empty());
    assert!(store.insert_first_data_key(&data_key("aaaaaaaa", DataKeyState::Current)).await.unwrap());
    // Another process, later: it reads the first one back.
    assert!(!store.insert_first_data_key(&data_key("bbbbbbbb", DataKeyState::Current)).await.unwrap());
    let keys = store.data_keys().await.unwrap();
    assert_eq!(states(&keys), [("aaaaaaaa", DataKeyState::Current)]);
    assert_eq!(keys[0].wrapped, SealedBytes(b"wrapped aaaaaaaa".to_vec()));

    assert!(store.start_key_rotation(&data_key("cccccccc", DataKeyState::Current)).await.unwrap());
    assert_eq!(
        states(&store.data_keys().await.unwrap()),
        [("cccccccc", DataKeyState::Current), ("aaaaaaaa", DataKeyState::Retiring)]
    );
    // A rotation under way is resumed, not started again.
    assert!(!store.start_key_rotation(&data_key("dddddddd", DataKeyState::Current)).await.unwrap());
    assert_eq!(store.data_keys().await.unwrap().len(), 2);

    assert_eq!(store.delete_retiring_data_keys().await.unwrap(), 1);
    assert_eq!(store.delete_retiring_data_keys().await.unwrap(), 0);
    assert_eq!(states(&store.data_keys().await.unwrap()), [("cccccccc", DataKeyState::Current)]);

    // A move keeps keys as they are, and skips one already there.
    assert!(store.import_data_key(&data_key("eeeeeeee", DataKeyState::Retiring)).await.unwrap());
    assert!(!store.import_data_key(&data_key("eeeeeeee", DataKeyState::Retiring)).await.unwrap());
    assert!(!store.import_data_key(&data_key("ffffffff", DataKeyState::Current)).await.unwrap(), "one current key");
    assert_eq!(
        states(&store.data_keys().await.unwrap()),
        [("cccccccc", DataKeyState::Current), ("eeeeeeee", DataKeyState::Retiring)]
    );
}

fn sealed(key: &str, rest: &str) -> SealedBytes {
    SealedBytes(format!("v1{key}{rest}").into_bytes())
}

pub async fn sealed_values_not_under_a_key_are_listed_and_resealed_only_if_unchanged(ctx: &Ctx) {
    let store = ctx.store();
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let mut connector = connector_record(&tenant);
    connector.oauth_client_secret = Some(sealed("oldoldol", "client"));
    store.insert_connector(&connector).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut connection = connection_record(&tenant, &connector.id);
        connection.secrets = Some(sealed(if n == 0 { "newnewne" } else { "oldoldol" }, &format!("secret {n}")));
        connection.tokens = (n == 1).then(|| sealed("masterky", "tokens"));
        store.insert_connection(&connection).await.unwrap();
        ids.push(connection.id);
    }
    let mut state = state_record(&tenant, "state-hash", now_millis() + 60_000);
    state.verifier = sealed("oldoldol", "verifier");
    state.sealed_return_url = Some(sealed("oldoldol", "return"));
    store.insert_oauth_state(&state).await.unwrap();
    let mut webhook = webhook_record(&tenant, None);
    webhook.secrets = sealed("oldoldol", "webhook");
    store.insert_webhook(&webhook).await.unwrap();

    let current = b"v1newnewne";
    // Pages by row key, the value sealed by the current key left out.
    let first = store.list_sealed(SealedColumn::ConnectionSecrets, current, "", 3).await.unwrap();
    assert_eq!(first.iter().map(|v| v.row.as_str()).collect::<Vec<_>>(), [&ids[1], &ids[2], &ids[3]]);
    let rest = store.list_sealed(SealedColumn::ConnectionSecrets, current, &first[2].row, 3).await.unwrap();
    assert_eq!(rest.iter().map(|v| v.row.as_str()).collect::<Vec<_>>(), [&ids[4]]);
    assert_eq!(first[0].sealed, sealed("oldoldol", "secret 1"));

    // A value written meanwhile by another process is not replaced by a stale one.
    let mut changed = store.connection(&tenant, &ids[2]).await.unwrap().unwrap();
    changed.secrets = Some(sealed("newnewne", "written meanwhile"));
    store.update_connection(&changed).await.unwrap();
    let resealed: Vec<Reseal> = first
        .iter()
        .chain(&rest)
        .map(|v| Reseal { row: v.row.clone(), old: v.sealed.clone(), new: sealed("newnewne", &v.row) })
        .collect();
    assert_eq!(store.reseal(SealedColumn::ConnectionSecrets, &resealed).await.unwrap(), 3);
    assert_eq!(store.connection(&tenant, &ids[2]).await.unwrap().unwrap().secrets, changed.secrets);
    assert_eq!(store.connection(&tenant, &ids[1]).await.unwrap().unwrap().secrets, Some(sealed("newnewne", &ids[1])));
    assert!(store.list_sealed(SealedColumn::ConnectionSecrets, current, "", 100).await.unwrap().is_empty());

    // Every other sealed column, NULLs left out.
    for column in SealedColumn::ALL {
        let values = store.list_sealed(column, current, "", 100).await.unwrap();
        let expected = if column == SealedColumn::ConnectionSecrets { 0 } else { 1 };
        assert_eq!(values.len(), expected, "{}", column.name());
        let resealed: Vec<Reseal> = values
            .iter()
            .map(|v| Reseal { row: v.row.clone(), old: v.sealed.clone(), new: sealed("newnewne", column.name()) })
            .collect();
        assert_eq!(store.reseal(column, &resealed).await.unwrap(), expected as u64);
        assert!(store.list_sealed(column, current, "", 100).await.unwrap().is_empty(), "{}", column.name());
        let counts = store.count_sealed(column, current.len()).await.unwrap();
        let total = if column == SealedColumn::ConnectionSecrets { 5 } else { 1 };
        assert_eq!(counts, [(current.to_vec(), total)], "{}", column.name());
    }
    let stored = store.connector(&tenant, &connector.id).await.unwrap().unwrap();
    assert_eq!(stored.oauth_client_secret, Some(sealed("newnewne", "connectors.oauth_client_secret")));
    assert_eq!(
        store.webhook(&tenant, &webhook.id).await.unwrap().unwrap().secrets,
        sealed("newnewne", "webhooks.secrets")
    );
}

fn rewrap(id: &str, old: &str, new: &str) -> Rewrap {
    Rewrap { id: id.to_owned(), old: SealedBytes(old.as_bytes().to_vec()), new: SealedBytes(new.as_bytes().to_vec()) }
}

fn wrapped(keys: &[DataKeyRecord]) -> Vec<(&str, &[u8])> {
    keys.iter().map(|key| (key.id.as_str(), key.wrapped.0.as_slice())).collect()
}

pub async fn a_new_master_key_rewraps_every_data_key_and_the_check_at_once_or_not_at_all(ctx: &Ctx) {
    let store = ctx.store();
    assert!(store.insert_first_data_key(&data_key("aaaaaaaa", DataKeyState::Current)).await.unwrap());
    assert!(store.start_key_rotation(&data_key("bbbbbbbb", DataKeyState::Current)).await.unwrap());
    store.init_setting("master_key_check", b"check by old").await.unwrap();
    let both = [
        rewrap("bbbbbbbb", "wrapped bbbbbbbb", "new bbbbbbbb"),
        rewrap("aaaaaaaa", "wrapped aaaaaaaa", "new aaaaaaaa"),
    ];
    let untouched = || async {
        assert_eq!(
            wrapped(&store.data_keys().await.unwrap()),
            [("bbbbbbbb", &b"wrapped bbbbbbbb"[..]), ("aaaaaaaa", &b"wrapped aaaaaaaa"[..])]
        );
        assert_eq!(store.setting("master_key_check").await.unwrap().unwrap(), b"check by old");
    };

    // Each refusal writes nothing: a key left out (it would stay wrapped by the old master key),
    // a key whose wrapping changed meanwhile, a key named twice, a check that changed.
    let refusals: [(&[Rewrap], &[u8]); 4] = [
        (&both[..1], b"check by old"),
        (&[both[0].clone(), rewrap("aaaaaaaa", "stale", "new aaaaaaaa")], b"check by old"),
        (&[both[0].clone(), both[0].clone()], b"check by old"),
        (&both, b"another check"),
    ];
    for (keys, check_old) in refusals {
        assert!(!store.rewrap_data_keys(keys, "master_key_check", check_old, b"check by new").await.unwrap());
        untouched().await;
    }

    assert!(store.rewrap_data_keys(&both, "master_key_check", b"check by old", b"check by new").await.unwrap());
    assert_eq!(
        wrapped(&store.data_keys().await.unwrap()),
        [("bbbbbbbb", &b"new bbbbbbbb"[..]), ("aaaaaaaa", &b"new aaaaaaaa"[..])]
    );
    assert_eq!(
        states(&store.data_keys().await.unwrap()),
        [("bbbbbbbb", DataKeyState::Current), ("aaaaaaaa", DataKeyState::Retiring)]
    );
    assert_eq!(store.setting("master_key_check").await.unwrap().unwrap(), b"check by new");
    // Done once: the same rewrap again finds the new bytes and writes nothing.
    assert!(!store.rewrap_data_keys(&both, "master_key_check", b"check by new", b"check by new").await.unwrap());
}
