//! The local HTTP source server the upload tests stream from (`tests/source_support`), through
//! reqwest: a deterministic body whose digest the helper computes the same way; `Range` honoured
//! (206, 416, HEAD, If-Range) and ignored; a slow source no faster than its cap; connections cut
//! mid-body; error statuses for the first requests; wrong bytes and lying lengths; redirects and
//! a redirect loop; a required header; a 5 GiB body read at its end without holding it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod source_support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, ETAG, LAST_MODIFIED, RANGE};
use source_support::*;

const SIZE: u64 = 3 * 1024 * 1024 + 12_345;
const SEED: u64 = 19;

fn client() -> reqwest::Client {
    ecs_image_operator::ecs::ensure_tls_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    ecs_image_operator::ecs::ensure_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn body() -> SourceBody {
    SourceBody::new(SEED, SIZE)
}

async fn get(url: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = client().get(url);
    if let Some(range) = range {
        request = request.header(RANGE, range);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Reads a body chunk by chunk; the bytes that arrived, and whether it ended in an error.
async fn read_all(response: reqwest::Response) -> (Vec<u8>, bool) {
    let (bytes, error) = read_until_error(response).await;
    (bytes, error.is_some())
}

/// Reads a body chunk by chunk; the bytes that arrived, and the error it ended in, if any.
async fn read_until_error(mut response: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return (bytes, None),
            Err(error) => return (bytes, Some(error)),
        }
    }
}

#[test]
fn the_body_is_deterministic_and_any_range_is_the_same_bytes() {
    let whole = body().to_vec();
    assert_eq!(whole.len() as u64, SIZE);
    assert_eq!(body().to_vec(), whole, "same (seed, size), same bytes");
    assert_ne!(SourceBody::new(SEED + 1, SIZE).to_vec(), whole);
    assert_eq!(body().sha256(), sha256_hex(&whole));
    for (start, end) in [(0, 1), (3, 21), (7, 8), (65_535, 200_003), (SIZE - 5, SIZE)] {
        let part = &whole[start as usize..end as usize];
        assert_eq!(body().range(start, end), part, "range {start}..{end}");
        assert_eq!(body().sha256_of_range(start, end), sha256_hex(part));
    }
    let header = b"QFI\xfb\x00\x00\x00\x03";
    let footer = [b"conectix".as_slice(), &[0x5a; 504]].concat();
    let framed = body().with_prefix(header).with_suffix(&footer);
    let bytes = framed.to_vec();
    assert_eq!(&bytes[..8], header);
    assert_eq!(&bytes[bytes.len() - 512..], footer.as_slice());
    assert_eq!(&bytes[8..bytes.len() - 512], &whole[8..whole.len() - 512]);
    assert_ne!(framed.etag(), body().etag(), "the ETag names the bytes");
}

#[tokio::test]
async fn a_whole_get_has_the_helpers_digest_and_is_counted() {
    let server = SourceServer::new()
        .route("/disk.raw", Serve::range(body()))
        .start()
        .await;
    let response = get(&server.url_of("/disk.raw"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(header(&response, CONTENT_LENGTH), Some(SIZE.to_string()));
    assert_eq!(header(&response, ETAG), Some(body().etag()));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), body().sha256());
    assert_eq!(server.requests(), 1);
    assert_eq!(server.bytes_served(), SIZE);
    assert_eq!(server.bytes_served_to("/disk.raw"), SIZE);
}

#[tokio::test]
async fn head_says_length_etag_and_last_modified_and_sends_nothing() {
    let server = SourceServer::new()
        .route("/disk.raw", Serve::range(body()))
        .start()
        .await;
    let response = client()
        .head(server.url_of("/disk.raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_LENGTH), Some(SIZE.to_string()));
    assert_eq!(header(&response, ETAG), Some(body().etag()));
    assert_eq!(
        header(&response, LAST_MODIFIED).as_deref(),
        Some(LAST_MODIFIED_DATE)
    );
    assert_eq!(header(&response, ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(server.bytes_served(), 0);
}

#[tokio::test]
async fn range_reads_stitch_to_the_same_digest() {
    let server = SourceServer::new()
        .route("/disk.raw", Serve::range(body()))
        .start()
        .await;
    let url = server.url_of("/disk.raw");
    let asked = [
        "bytes=0-99999".to_string(),
        "bytes=100000-1048575".to_string(),
        format!("bytes=1048576-{}", SIZE - 1001),
        "bytes=-1000".to_string(),
    ];
    let mut stitched = Vec::new();
    for range in &asked {
        let response = get(&url, Some(range)).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let start = stitched.len() as u64;
        let (bytes, failed) = read_all(response_checked(response, start).await).await;
        assert!(!failed, "{range}");
        stitched.extend_from_slice(&bytes);
    }
    assert_eq!(stitched.len() as u64, SIZE);
    assert_eq!(sha256_hex(&stitched), body().sha256());
    assert_eq!(server.ranges_to("/disk.raw"), asked);
    assert_eq!(server.bytes_served(), SIZE);

    // Resuming from the next byte is an open-ended range.
    let response = get(&url, Some("bytes=2000000-")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let tail = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&tail), body().sha256_of_range(2_000_000, SIZE));
}

/// Checks a 206's Content-Range and Content-Length against where the stitch is.
async fn response_checked(response: reqwest::Response, start: u64) -> reqwest::Response {
    let content_range = header(&response, CONTENT_RANGE).unwrap();
    let length: u64 = header(&response, CONTENT_LENGTH).unwrap().parse().unwrap();
    let expected = format!("bytes {start}-{}/{SIZE}", start + length - 1);
    assert_eq!(content_range, expected);
    response
}

#[tokio::test]
async fn an_unsatisfiable_range_is_416_and_odd_ranges_are_ignored() {
    let server = SourceServer::new()
        .route("/disk.raw", Serve::range(body()))
        .start()
        .await;
    let url = server.url_of("/disk.raw");
    for range in [format!("bytes={SIZE}-"), "bytes=-0".to_string()] {
        let response = get(&url, Some(&range)).await;
        assert_eq!(
            response.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range}"
        );
        assert_eq!(
            header(&response, CONTENT_RANGE),
            Some(format!("bytes */{SIZE}"))
        );
    }
    // Past-the-end last byte is clamped, as RFC 9110 says.
    let response = get(&url, Some(&format!("bytes={}-{}", SIZE - 10, SIZE + 10))).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.bytes().await.unwrap(),
        body().range(SIZE - 10, SIZE)
    );
    for ignored in ["bytes=0-1,5-9", "bytes=9-3", "lines=1-2"] {
        let response = get(&url, Some(ignored)).await;
        assert_eq!(response.status(), StatusCode::OK, "{ignored}");
        assert_eq!(header(&response, CONTENT_LENGTH), Some(SIZE.to_string()));
    }
}

#[tokio::test]
async fn if_range_with_another_validator_gets_the_whole_body() {
    let server = SourceServer::new()
        .route("/disk.raw", Serve::range(body()))
        .start()
        .await;
    let url = server.url_of("/disk.raw");
    let partial = |validator: String| {
        let url = url.clone();
        async move {
            let response = client()
                .get(url)
                .header(RANGE, "bytes=10-19")
                .header("if-range", validator)
                .send()
                .await
                .unwrap();
            response.status()
        }
    };
    assert_eq!(partial(body().etag()).await, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        partial(LAST_MODIFIED_DATE.to_string()).await,
        StatusCode::PARTIAL_CONTENT
    );
    assert_eq!(partial("\"changed\"".to_string()).await, StatusCode::OK);
    // A source that changed between two reads: the old ETag no longer matches.
    server.set_route("/disk.raw", Serve::range(SourceBody::new(SEED + 1, SIZE)));
    assert_eq!(partial(body().etag()).await, StatusCode::OK);
}

#[tokio::test]
async fn no_range_ignores_range_and_sends_the_whole_body() {
    let server = SourceServer::new()
        .route("/plain", Serve::no_range(body()))
        .start()
        .await;
    let response = get(&server.url_of("/plain"), Some("bytes=100-")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, ACCEPT_RANGES), None);
    assert_eq!(header(&response, CONTENT_RANGE), None);
    assert_eq!(header(&response, CONTENT_LENGTH), Some(SIZE.to_string()));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), body().sha256());
    assert_eq!(
        server.ranges(),
        ["bytes=100-"],
        "the ignored range is still recorded"
    );
    let head = client().head(server.url_of("/plain")).send().await.unwrap();
    assert_eq!(header(&head, ACCEPT_RANGES), None);
}

#[tokio::test]
async fn a_slow_source_is_no_faster_than_its_cap() {
    const RATE: u64 = 200_000;
    const BODY: u64 = 120_000;
    let small = SourceBody::new(SEED, BODY);
    let server = SourceServer::new()
        .route("/slow", Serve::range(small.clone()).slow(RATE))
        .route("/slow-range", Serve::range(small.clone()).slow(RATE))
        .start()
        .await;
    let floor = Duration::from_secs_f64((BODY - slow_chunk(RATE)) as f64 / RATE as f64);

    let started = Instant::now();
    let bytes = get(&server.url_of("/slow"), None)
        .await
        .bytes()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(sha256_hex(&bytes), small.sha256());
    assert!(
        elapsed >= floor,
        "{BODY} bytes at {RATE} B/s took {elapsed:?}, under {floor:?}"
    );

    // A range of a slow source is paced too (what a resumed upload reads).
    let started = Instant::now();
    let response = get(&server.url_of("/slow-range"), Some("bytes=20000-")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let bytes = response.bytes().await.unwrap();
    let elapsed = started.elapsed();
    let floor = Duration::from_secs_f64((BODY - 20_000 - slow_chunk(RATE)) as f64 / RATE as f64);
    assert_eq!(bytes, small.range(20_000, BODY));
    assert!(elapsed >= floor, "range took {elapsed:?}, under {floor:?}");
}

#[tokio::test]
async fn a_cut_connection_errors_mid_body_and_a_resume_gets_the_rest() {
    const CUT: u64 = 1_000_000;
    let server = SourceServer::new()
        .route("/cut", Serve::range(body()).cut_after(CUT))
        .route(
            "/cut-once",
            Serve::range(body()).cut_after(CUT).only_first(1),
        )
        .start()
        .await;
    let response = get(&server.url_of("/cut"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_LENGTH), Some(SIZE.to_string()));
    let (bytes, failed) = read_all(response).await;
    assert!(failed, "the body ended in an error");
    assert!(bytes.len() as u64 <= CUT, "{} bytes arrived", bytes.len());
    assert_eq!(
        bytes,
        body().range(0, bytes.len() as u64),
        "what arrived is right"
    );
    assert_eq!(server.bytes_served_to("/cut"), CUT);

    // Every response is cut after CUT bytes of its own, ranges too.
    let (bytes, failed) = read_all(get(&server.url_of("/cut"), Some("bytes=5-")).await).await;
    assert!(failed && bytes.len() as u64 <= CUT);

    // Cut once: the resume from the next byte completes the digest.
    let url = server.url_of("/cut-once");
    let (mut got, failed) = read_all(get(&url, None).await).await;
    assert!(failed);
    let response = get(&url, Some(&format!("bytes={}-", got.len()))).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let (rest, failed) = read_all(response).await;
    assert!(!failed);
    got.extend_from_slice(&rest);
    assert_eq!(sha256_hex(&got), body().sha256());
}

#[tokio::test]
async fn error_statuses_for_the_first_requests_then_the_body_and_404s() {
    let server = SourceServer::new()
        .route("/busy", Serve::range(body()).fail_first(503, 2))
        .route("/broken", Serve::range(body()).fail_first(500, 1))
        .route("/gone", Route::NotFound)
        .start()
        .await;
    let url = server.url_of("/busy");
    assert_eq!(client().head(&url).send().await.unwrap().status(), 503);
    assert_eq!(
        get(&url, None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let response = get(&url, None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the third request succeeds"
    );
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        body().sha256()
    );

    let url = server.url_of("/broken");
    assert_eq!(
        get(&url, None).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        get(&url, Some("bytes=0-9")).await.status(),
        StatusCode::PARTIAL_CONTENT
    );

    assert_eq!(
        get(&server.url_of("/gone"), None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&server.url_of("/nothing"), None).await.status(),
        StatusCode::NOT_FOUND
    );
    let statuses: Vec<u16> = server.log().iter().map(|logged| logged.status).collect();
    assert_eq!(statuses, [503, 503, 200, 500, 206, 404, 404]);
}

#[tokio::test]
async fn wrong_bytes_give_another_digest_from_their_offset() {
    const FROM: u64 = 2_000_000;
    let server = SourceServer::new()
        .route("/liar", Serve::range(body()).wrong_bytes_from(FROM))
        .start()
        .await;
    let url = server.url_of("/liar");
    let response = get(&url, None).await;
    assert_eq!(
        header(&response, ETAG),
        Some(body().etag()),
        "it claims to be the body"
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, SIZE);
    assert_ne!(sha256_hex(&bytes), body().sha256());
    assert_eq!(&bytes[..FROM as usize], body().range(0, FROM).as_slice());
    let truth = body().range(FROM, SIZE);
    let lies = &bytes[FROM as usize..];
    assert!(
        lies.iter()
            .zip(&truth)
            .all(|(lie, true_byte)| lie != true_byte)
    );
    // A range before the offset is right, one across it is not.
    let early = get(&url, Some("bytes=0-999")).await.bytes().await.unwrap();
    assert_eq!(early, body().range(0, 1000));
    let range = format!("bytes={}-{}", FROM - 10, FROM + 9);
    let across = get(&url, Some(&range)).await.bytes().await.unwrap();
    assert_eq!(across[..10], body().range(FROM - 10, FROM)[..]);
    assert_ne!(across[10..], body().range(FROM, FROM + 10)[..]);
}

#[tokio::test]
async fn a_lying_content_length_ends_early_or_short() {
    let server = SourceServer::new()
        .route("/longer", Serve::range(body()).declared_length(SIZE + 4096))
        .route(
            "/shorter",
            Serve::range(body()).declared_length(SIZE - 4096),
        )
        .start()
        .await;
    let head = client()
        .head(server.url_of("/shorter"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&head, CONTENT_LENGTH),
        Some(SIZE.to_string()),
        "HEAD tells the truth"
    );

    let response = get(&server.url_of("/longer"), None).await;
    assert_eq!(
        header(&response, CONTENT_LENGTH),
        Some((SIZE + 4096).to_string())
    );
    let (bytes, failed) = read_all(response).await;
    assert!(failed, "the body ended before its Content-Length");
    assert!(bytes.len() as u64 <= SIZE);

    let response = get(&server.url_of("/shorter"), None).await;
    assert_eq!(
        header(&response, CONTENT_LENGTH),
        Some((SIZE - 4096).to_string())
    );
    let (bytes, failed) = read_all(response).await;
    assert!(!failed, "complete as far as HTTP can tell");
    assert_eq!(bytes, body().range(0, SIZE - 4096));
    assert_ne!(sha256_hex(&bytes), body().sha256());
}

#[tokio::test]
async fn redirects_are_followed_and_a_loop_never_ends() {
    let server = SourceServer::new()
        .route("/disk.raw", Serve::range(body()))
        .route("/moved", Route::redirect("/disk.raw"))
        .route("/ping", Route::redirect("/pong"))
        .route("/pong", Route::redirect("/ping"))
        .start()
        .await;
    let response = no_redirects()
        .get(server.url_of("/moved"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        header(&response, reqwest::header::LOCATION).as_deref(),
        Some("/disk.raw")
    );

    let response = get(&server.url_of("/moved"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        body().sha256()
    );

    let error = client()
        .get(server.url_of("/ping"))
        .send()
        .await
        .expect_err("a redirect loop has no answer");
    assert!(error.is_redirect(), "{error}");
    let looped = server.requests_to("/ping") + server.requests_to("/pong");
    assert!(looped >= 2, "the loop went round: {looped} requests");
}

#[tokio::test]
async fn a_required_header_is_401_without_it() {
    let server = SourceServer::new()
        .route(
            "/private",
            Serve::range(body()).require_header("Authorization", "Bearer x"),
        )
        .start()
        .await;
    let url = server.url_of("/private");
    let response = get(&url, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, reqwest::header::WWW_AUTHENTICATE).as_deref(),
        Some("Bearer")
    );
    let wrong = client().get(&url).bearer_auth("y").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client().get(&url).bearer_auth("x").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert_eq!(sha256_hex(&right.bytes().await.unwrap()), body().sha256());
    assert_eq!(
        server.bytes_served(),
        SIZE,
        "nothing served without the header"
    );
}

#[tokio::test]
async fn a_five_gib_source_is_read_at_its_end_without_holding_it() {
    const BIG: u64 = 5 << 30;
    let footer = [b"conectix".as_slice(), &[0; 504]].concat();
    let disk = SourceBody::new(SEED, BIG)
        .with_prefix(b"QFI\xfb")
        .with_suffix(&footer);
    let server = SourceServer::new()
        .route("/big.vhd", Serve::range(disk.clone()))
        .start()
        .await;
    let url = server.url_of("/big.vhd");
    let head = client().head(&url).send().await.unwrap();
    assert_eq!(header(&head, CONTENT_LENGTH), Some(BIG.to_string()));
    let first = get(&url, Some("bytes=0-3")).await.bytes().await.unwrap();
    assert_eq!(&first[..], b"QFI\xfb");
    let last = get(&url, Some("bytes=-512")).await;
    assert_eq!(
        header(&last, CONTENT_RANGE),
        Some(format!("bytes {}-{}/{BIG}", BIG - 512, BIG - 1))
    );
    assert_eq!(last.bytes().await.unwrap(), footer);
    let middle = get(&url, Some("bytes=4294967290-4294967309"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(middle, disk.range(4_294_967_290, 4_294_967_310));
}

#[tokio::test]
async fn dropping_the_handle_cuts_a_response_and_stop_closes_the_port() {
    let server = SourceServer::new()
        .route("/slow", Serve::range(body()).slow(100_000))
        .start()
        .await;
    let mut response = get(&server.url_of("/slow"), None).await;
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    drop(server);
    let (rest, error) = read_until_error(response).await;
    let error = error.expect("the open response is cut");
    // At 100 kB/s the body would outlast the client's 20 s timeout: a timeout is no cut.
    assert!(!error.is_timeout(), "the response was not cut: {error}");
    assert!(((first.len() + rest.len()) as u64) < SIZE);

    let server = SourceServer::new().start().await;
    let addr = server.url().trim_start_matches("http://").to_string();
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "{addr} still accepts"
    );
}
