//! `--ca-file`: trusted root certificates read from PEM files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The largest CA file read. A system bundle of every public root is ~250 KiB.
pub const MAX_CA_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The certificates (DER) of every `CERTIFICATE` section of the PEM file at `path`,
/// each checked the way the client checks its roots at connect (a parsable X.509
/// certificate usable as a trust anchor). Other sections (keys, CRLs...) are skipped.
///
/// # Errors
/// A message naming the file: unreadable, larger than [`MAX_CA_FILE_BYTES`],
/// malformed PEM, a section that is not a usable certificate, or no certificate.
pub fn read_roots(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let fail = |what: String| format!("--ca-file {}: {what}", path.display());
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(fail(format!(
            "larger than {} MiB",
            MAX_CA_FILE_BYTES / (1024 * 1024)
        )));
    }
    parse_roots(&text).map_err(fail)
}

/// [`read_roots`] on the file's contents.
fn parse_roots(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut store = RootCertStore::empty();
    let mut roots = Vec::new();
    for (i, section) in CertificateDer::pem_slice_iter(text).enumerate() {
        let n = i + 1;
        let cert = section.map_err(|e| format!("certificate {n}: {}", pem_error(&e)))?;
        store
            .add(cert.clone())
            .map_err(|e| format!("certificate {n} is not a usable root certificate: {e}"))?;
        roots.push(cert.as_ref().to_vec());
    }
    if roots.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_owned());
    }
    Ok(roots)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "invalid PEM: no \"-----END {}-----\" line",
            String::from_utf8_lossy(end_marker).trim()
        ),
        pem::Error::IllegalSectionStart { .. } => "invalid PEM: malformed BEGIN line".to_owned(),
        pem::Error::Base64Decode(e) => format!("invalid PEM: bad base64 ({e})"),
        other => format!("invalid PEM: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_pem() -> String {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("certificate generated")
            .cert
            .pem()
    }

    #[test]
    fn every_certificate_section_is_read_and_other_sections_are_skipped() {
        let (a, b) = (self_signed_pem(), self_signed_pem());
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let text = format!("a bundle\n{a}{key}\n{b}");
        let roots = parse_roots(text.as_bytes()).unwrap();
        assert_eq!(roots.len(), 2);
        assert_eq!(
            roots[0],
            CertificateDer::from_pem_slice(a.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        );
    }

    #[test]
    fn files_without_a_usable_certificate_are_errors() {
        let not_a_cert = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
        let unterminated = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n";
        for (text, expected) in [
            ("", "no PEM certificate"),
            ("hello\n", "no PEM certificate"),
            (not_a_cert, "certificate 1 is not a usable root certificate"),
            (bad_base64, "bad base64"),
            (unterminated, "no \"-----END CERTIFICATE-----\" line"),
        ] {
            let e = parse_roots(text.as_bytes()).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }
}
