//! A small in-process HTTP stub for the safety scenarios: a per-pod gate endpoint
//! (`GET /gate/POD`) and the Prometheus query API (`GET /api/v1/query`), both answering
//! what the test sets, and counting what they were asked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct StubState {
    /// Pod → how many more asks its gate fails (503).
    pub failing: BTreeMap<String, u32>,
    /// The number the query API answers.
    pub value: f64,
    /// Every gate ask, by pod.
    pub asked: BTreeMap<String, u32>,
    /// Query API asks.
    pub queries: u32,
}

pub struct Stub {
    pub url: String,
    pub state: Arc<Mutex<StubState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub async fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(StubState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let Ok(Some(request)) = lines.next_line().await else {
                        return;
                    };
                    // Headers end at the empty line; requests have no body.
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            break;
                        }
                    }
                    let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
                    let (status, body) = answer(&state, &path);
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = write.write_all(reply.as_bytes()).await;
                    let _ = write.shutdown().await;
                });
            }
        });
        Stub { url, state, task }
    }

    /// Fail `pod`'s gate for its next `times` asks.
    pub fn fail(&self, pod: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .failing
            .insert(pod.to_owned(), times);
    }

    /// What the query API answers from now on.
    pub fn set_value(&self, value: f64) {
        self.state.lock().unwrap().value = value;
    }

    pub fn asked(&self, pod: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .asked
            .get(pod)
            .copied()
            .unwrap_or(0)
    }

    pub fn queries(&self) -> u32 {
        self.state.lock().unwrap().queries
    }
}

fn answer(state: &Mutex<StubState>, path: &str) -> (&'static str, String) {
    let mut s = state.lock().unwrap();
    if let Some(pod) = path.strip_prefix("/gate/") {
        *s.asked.entry(pod.to_owned()).or_default() += 1;
        return match s.failing.get_mut(pod) {
            Some(n) if *n > 0 => {
                *n -= 1;
                (
                    "503 Service Unavailable",
                    r#"{"caughtUp":false}"#.to_owned(),
                )
            }
            _ => ("200 OK", r#"{"caughtUp":true}"#.to_owned()),
        };
    }
    if path.starts_with("/api/v1/query?") {
        s.queries += 1;
        let body = serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [1.0, s.value.to_string()]}
            ]}
        });
        return ("200 OK", body.to_string());
    }
    ("404 Not Found", "{}".to_owned())
}
