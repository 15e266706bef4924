//! A client of the Prometheus HTTP API's instant query (`GET /api/v1/query`), for gates
//! and analysis checks. A check needs one number; anything else (an error answer, no
//! series, several series, a value that is not a number) is a failed check with the
//! reason, never a pass: a metrics outage must not look like good health.

use std::time::Duration;

use baton_engine::plan::PrometheusQuery;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("cannot build the Prometheus client")]
    Client(#[source] reqwest::Error),
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("no answer from {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {error}")]
    Status {
        url: String,
        status: u16,
        error: String,
    },
    #[error("the answer of {url} is not the query API's JSON: {reason}")]
    Decode { url: String, reason: String },
    #[error("the query returned no series: expected one number")]
    NoData,
    #[error("the query returned {0} series: expected one number (aggregate it, e.g. max(...))")]
    Ambiguous(usize),
    #[error("the query returned {0:?}, which is not a number")]
    NotANumber(String),
    #[error("the query's result type is {0}: expected a scalar or a vector of one sample")]
    ResultType(String),
}

/// The query API's envelope (`status`, `data` or `errorType`/`error`).
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// Asks `query` (placeholders already expanded) of the server at `q.url`, at its timeout.
pub async fn query_value(q: &PrometheusQuery, query: &str) -> Result<f64, PrometheusError> {
    let timeout = q.timeout.as_std();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(PrometheusError::Client)?;
    let url = format!("{}/api/v1/query", q.url.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| transport(&url, timeout, &e))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport(&url, timeout, &e))?;
    let envelope: Result<Envelope, _> = serde_json::from_slice(&body);
    match envelope {
        Ok(env) if env.status == "success" && (200..300).contains(&status) => {
            let data = env.data.ok_or_else(|| PrometheusError::Decode {
                url: url.clone(),
                reason: "no data".to_owned(),
            })?;
            single_value(&data.result_type, &data.result)
        }
        Ok(env) => Err(PrometheusError::Status {
            url,
            status,
            error: match (env.error_type, env.error) {
                (Some(t), Some(e)) => format!("{t}: {e}"),
                (_, Some(e)) => e,
                _ => format!("status {}", env.status),
            },
        }),
        Err(_) if !(200..300).contains(&status) => Err(PrometheusError::Status {
            url,
            status,
            error: String::from_utf8_lossy(&body).chars().take(200).collect(),
        }),
        Err(e) => Err(PrometheusError::Decode {
            url,
            reason: e.to_string(),
        }),
    }
}

fn transport(url: &str, timeout: Duration, e: &reqwest::Error) -> PrometheusError {
    if e.is_timeout() {
        PrometheusError::Timeout {
            url: url.to_owned(),
            timeout,
        }
    } else {
        PrometheusError::Transport {
            url: url.to_owned(),
            reason: crate::env::chain(e),
        }
    }
}

/// The one number of a `scalar` (`[ts, "v"]`) or a `vector` of one sample
/// (`[{metric, value: [ts, "v"]}]`).
pub fn single_value(result_type: &str, result: &serde_json::Value) -> Result<f64, PrometheusError> {
    let sample = match result_type {
        "scalar" => result,
        "vector" => {
            let series = result.as_array().map(Vec::as_slice).unwrap_or_default();
            match series {
                [] => return Err(PrometheusError::NoData),
                [one] => &one["value"],
                many => return Err(PrometheusError::Ambiguous(many.len())),
            }
        }
        other => return Err(PrometheusError::ResultType(other.to_owned())),
    };
    let text = sample[1]
        .as_str()
        .ok_or_else(|| PrometheusError::NotANumber(sample.to_string()))?;
    text.parse::<f64>()
        .map_err(|_| PrometheusError::NotANumber(text.to_owned()))
}

/// Whether `value` passes `q`'s bounds, and the comparison in words (`0.2 <= 5`,
/// `7.5 > 5 (max)`). NaN passes no bound.
pub fn judge(q: &PrometheusQuery, value: f64) -> (bool, String) {
    if let Some(max) = q.max
        && (value.is_nan() || value > max)
    {
        return (false, format!("{value} > {max} (max)"));
    }
    if let Some(min) = q.min
        && (value.is_nan() || value < min)
    {
        return (false, format!("{value} < {min} (min)"));
    }
    let told = match (q.min, q.max) {
        (Some(min), Some(max)) => format!("{min} <= {value} <= {max}"),
        (None, Some(max)) => format!("{value} <= {max}"),
        (Some(min), None) => format!("{value} >= {min}"),
        (None, None) => format!("{value}"),
    };
    (true, told)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(min: Option<f64>, max: Option<f64>) -> PrometheusQuery {
        PrometheusQuery {
            url: "http://p".into(),
            query: "up".into(),
            max,
            min,
            timeout: baton_engine::duration::Duration::from_secs(1),
        }
    }

    #[test]
    fn one_number_is_read_from_a_scalar_or_a_single_sample() {
        let ok = [
            ("scalar", json!([1.5, "0.25"]), 0.25),
            ("vector", json!([{"metric": {}, "value": [1.5, "3"]}]), 3.0),
        ];
        for (ty, result, want) in ok {
            assert_eq!(single_value(ty, &result).unwrap(), want, "{result}");
        }
        let bad = [
            ("vector", json!([]), "no series"),
            (
                "vector",
                json!([{"value": [1, "1"]}, {"value": [1, "2"]}]),
                "2 series",
            ),
            ("scalar", json!([1, "many"]), "not a number"),
            ("matrix", json!([]), "result type is matrix"),
            ("scalar", json!([1, 2]), "not a number"),
        ];
        for (ty, result, want) in bad {
            let err = single_value(ty, &result).unwrap_err().to_string();
            assert!(err.contains(want), "{result}: {err}");
        }
    }

    /// A one-shot HTTP server answering `status` and `body`; returns its base URL and the
    /// request line it saw.
    async fn answer_once(
        status: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            let request = lines.next_line().await.unwrap().unwrap_or_default();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.is_empty() {
                    break;
                }
            }
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            write.write_all(reply.as_bytes()).await.unwrap();
            request
        });
        (url, seen)
    }

    #[tokio::test]
    async fn the_client_asks_the_query_api_and_tells_its_errors() {
        let (url, seen) = answer_once(
            "200 OK",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.004"]}]}}"#,
        )
        .await;
        let mut query = q(None, Some(0.01));
        query.url = format!("{url}/");
        assert_eq!(
            query_value(&query, "sum(rate(e[1m]))").await.unwrap(),
            0.004
        );
        let request = seen.await.unwrap();
        assert!(
            request.starts_with("GET /api/v1/query?query=sum%28rate%28e%5B1m%5D%29%29 "),
            "{request}"
        );

        let (url, _) = answer_once(
            "400 Bad Request",
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#,
        )
        .await;
        query.url = url;
        let err = query_value(&query, "sum(").await.unwrap_err().to_string();
        assert!(
            err.ends_with("answered HTTP 400: bad_data: parse error at char 4"),
            "{err}"
        );

        let (url, _) = answer_once("502 Bad Gateway", "upstream down").await;
        query.url = url;
        let err = query_value(&query, "up").await.unwrap_err().to_string();
        assert!(err.ends_with("answered HTTP 502: upstream down"), "{err}");

        // Nobody listens: a transport error, named.
        query.url = "http://127.0.0.1:9".into();
        let err = query_value(&query, "up").await.unwrap_err().to_string();
        assert!(
            err.starts_with("no answer from http://127.0.0.1:9/api/v1/query"),
            "{err}"
        );
    }

    #[test]
    fn bounds_are_inclusive_and_nan_fails() {
        let table = [
            (q(None, Some(5.0)), 5.0, true, "5 <= 5"),
            (q(None, Some(5.0)), 5.5, false, "5.5 > 5 (max)"),
            (q(Some(1.0), None), 0.5, false, "0.5 < 1 (min)"),
            (q(Some(1.0), Some(2.0)), 1.5, true, "1 <= 1.5 <= 2"),
            (q(None, Some(5.0)), f64::NAN, false, "NaN > 5 (max)"),
            (q(Some(0.0), None), f64::NAN, false, "NaN < 0 (min)"),
        ];
        for (query, value, pass, told) in table {
            assert_eq!(judge(&query, value), (pass, told.to_owned()), "{value}");
        }
    }
}
