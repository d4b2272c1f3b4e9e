//! Response compression by `Accept-Encoding` (DESIGN.md, "The grid's
//! API"): gzip or br for bodies over [`COMPRESS_MIN_BYTES`], and `Vary:
//! Accept-Encoding` on every answer that could have been compressed. One
//! function, called on the way out by the Lambda functions and by the local
//! server alike, so both send the same bytes; the encoders are the flate2
//! and brotli crates.

use std::io::Write;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, VARY};
use http::{HeaderMap, HeaderValue, Response};

/// Bodies below this are sent as they are: compressing would not pay.
pub const COMPRESS_MIN_BYTES: usize = 1024;

/// gzip level: the usual default; a 1,000-row page in about 2 ms.
const GZIP_LEVEL: u32 = 6;
/// brotli quality and window: fast settings, still smaller than gzip.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
        }
    }
}

/// The coding to answer with: of br and gzip, the one the client weighs
/// highest (br on a tie); none when it accepts neither (or `q=0` both).
/// `*` stands for gzip.
pub fn negotiate(accept_encoding: &str) -> Option<Coding> {
    let mut best: Option<(Coding, f32)> = None;
    for part in accept_encoding.split(',') {
        let mut pieces = part.split(';');
        let name = pieces.next().unwrap_or_default().trim().to_ascii_lowercase();
        let weight = pieces
            .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .unwrap_or(1.0);
        let coding = match name.as_str() {
            "br" => Coding::Brotli,
            "gzip" | "x-gzip" | "*" => Coding::Gzip,
            _ => continue,
        };
        // q=0 refuses the coding; a weight that does not parse is no weight.
        if weight.is_nan() || weight <= 0.0 {
            continue;
        }
        let better =
            best.is_none_or(|(c, w)| weight > w || (weight == w && coding == Coding::Brotli && c != coding));
        if better {
            best = Some((coding, weight));
        }
    }
    best.map(|(coding, _)| coding)
}

/// `response` compressed for a request with `request_headers`, when its
/// body is large enough and not already encoded.
pub fn compress(mut response: Response<Bytes>, request_headers: &HeaderMap) -> Response<Bytes> {
    if response.body().len() < COMPRESS_MIN_BYTES || response.headers().contains_key(CONTENT_ENCODING) {
        return response;
    }
    response.headers_mut().append(VARY, HeaderValue::from_static("accept-encoding"));
    let Some(coding) = request_headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).and_then(negotiate)
    else {
        return response;
    };
    match encode(coding, response.body()) {
        Ok(encoded) => {
            *response.body_mut() = Bytes::from(encoded);
            response.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
            response.headers_mut().remove(CONTENT_LENGTH);
        }
        // Never an error for the client: the plain body goes out.
        Err(e) => tracing::warn!(error = %e, coding = coding.as_str(), "compression failed: sent plain"),
    }
    response
}

/// `body` encoded with `coding`.
///
/// # Errors
/// When the encoder fails (writing to memory: it does not in practice).
pub fn encode(coding: Coding, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match coding {
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder.write_all(body)?;
            encoder.finish()
        }
        Coding::Brotli => {
            let mut out = Vec::with_capacity(body.len() / 4);
            {
                let mut writer = brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
                writer.write_all(body)?;
                writer.flush()?;
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_client_weights_decide_and_refusals_are_honoured() {
        assert_eq!(negotiate("gzip, deflate, br"), Some(Coding::Brotli));
        assert_eq!(negotiate("gzip"), Some(Coding::Gzip));
        assert_eq!(negotiate("br;q=0.5, gzip;q=0.9"), Some(Coding::Gzip));
        assert_eq!(negotiate("br;q=0, gzip;q=0"), None);
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate("*"), Some(Coding::Gzip));
        assert_eq!(negotiate(""), None);
    }

    #[test]
    fn large_bodies_round_trip_small_ones_go_plain() -> std::io::Result<()> {
        let body = serde_json::json!({ "rows": vec!["TR-0001 USD 123.45"; 500] }).to_string();
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let gz = compress(Response::new(Bytes::from(body.clone())), &headers);
        assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(gz.headers()[VARY], "accept-encoding");
        let mut plain = String::new();
        flate2::read::GzDecoder::new(gz.body().as_ref()).read_to_string(&mut plain)?;
        assert_eq!(plain, body);

        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        let br = compress(Response::new(Bytes::from(body.clone())), &headers);
        let mut plain = String::new();
        brotli::Decompressor::new(br.body().as_ref(), 4096).read_to_string(&mut plain)?;
        assert_eq!(plain, body);
        assert!(br.body().len() < body.len() / 10);

        let small = compress(Response::new(Bytes::from_static(b"{}")), &headers);
        assert!(small.headers().get(CONTENT_ENCODING).is_none() && small.headers().get(VARY).is_none());
        Ok(())
    }
}
