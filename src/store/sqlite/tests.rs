//! What only the SQLite store does: closing its writer thread. The behaviour both backends
//! share is in `tests/it/queue.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use super::SqliteStore;
use crate::domain::{AppId, AppKey, EventTypeName, MessageKey, Payload};
use crate::store::{ApplicationStore, MessageStore, NewApplication, NewMessage, StoreError};

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open_path(path, 1).await.unwrap()
}

async fn app(store: &SqliteStore) -> AppId {
    let app = store
        .insert_application(NewApplication {
            uid: None,
            name: "s".into(),
            rate_limit: None,
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap();
    app.id
}

fn message(app: &AppId) -> NewMessage {
    let raw = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    NewMessage {
        app: AppKey::Id(app.clone()),
        create_app: None,
        event_type: EventTypeName::parse("a").unwrap(),
        event_id: None,
        channels: None,
        payload: Payload::parse(&raw).unwrap(),
        only_endpoint: None,
    }
}

#[tokio::test]
async fn close_ends_the_writer_and_the_file_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await;
    let app = app(&store).await;
    let accepted = store.enqueue_message(message(&app)).await.unwrap();
    store.close().await;
    assert!(matches!(
        store.enqueue_message(message(&app)).await,
        Err(StoreError::Unavailable(_))
    ));

    let reopened = open(&path).await;
    let found = reopened
        .get_message(&app, &MessageKey::Id(accepted.id.clone()))
        .await
        .unwrap();
    assert_eq!(found.map(|m| m.id), Some(accepted.id));
    reopened.enqueue_message(message(&app)).await.unwrap();
    reopened.close().await;
}
