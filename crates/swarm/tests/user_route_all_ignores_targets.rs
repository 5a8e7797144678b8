//! `Route::targets` is documented as ignored when `all` is set: a route read from JSON with both must run every successor.

use hivekit_swarm::{Pipeline, Route, StageContext, StageError};

#[tokio::test]
async fn a_route_with_all_set_ignores_its_targets() {
    // As an LLM or a config file might produce it: all set, a stale target left in.
    let route: Route = serde_json::from_str(r#"{"targets":["archived"],"all":true}"#).unwrap();
    assert!(route.takes("post") && route.takes("notify"));
    let pipeline = Pipeline::builder()
        .router("triage", move |_: StageContext| {
            let route = route.clone();
            async move { Ok::<_, StageError>(route) }
        })
        .stage("post", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["triage"])
        .stage("notify", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["triage"])
        .build()
        .unwrap();
    let report = tokio::time::timeout(std::time::Duration::from_secs(5), pipeline.run())
        .await
        .expect("the run ends");
    assert!(report.is_success(), "triage: {:?}", report.status("triage"));
    assert!(report.status("post").unwrap().is_success());
    assert!(report.status("notify").unwrap().is_success());
}

#[tokio::test]
async fn a_route_read_from_json_without_all_takes_only_its_targets() {
    let route: Route = serde_json::from_str(r#"{"targets":["post"]}"#).unwrap();
    let pipeline = Pipeline::builder()
        .router("triage", move |_: StageContext| {
            let route = route.clone();
            async move { Ok::<_, StageError>(route) }
        })
        .stage("post", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["triage"])
        .stage("notify", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["triage"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success());
    assert!(report.status("post").unwrap().is_success());
    assert_eq!(
        report.explain("notify").unwrap(),
        "notify skipped because route not taken by triage"
    );
}
