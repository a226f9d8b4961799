//! Public keys, from a PEM private key (`tls.key`) and from a certificate, in one comparable form. cert-manager
//! decodes `tls.key` as PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) and
//! reissues when the key does not match the certificate or `spec.privateKey`; the prediction needs the same two
//! answers, offline and without a crypto backend, so only the public half is derived here.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::ObjectIdentifier;
use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey as X509PublicKey;

const RSA: &str = "1.2.840.113549.1.1.1";
const EC: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const P521: &str = "1.3.132.0.35";

/// A public key, normalized so that equal keys compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        modulus: Vec<u8>,
        /// Public exponent.
        exponent: Vec<u8>,
    },
    /// ECDSA: curve size in bits and the uncompressed point (when the curve is one this build can decompress,
    /// else as encoded).
    Ecdsa {
        /// 256, 384 or 521.
        curve_bits: usize,
        /// SEC1 point.
        point: Vec<u8>,
    },
    /// Ed25519 public key bytes.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// Algorithm and size the way the manifest records it: `RSA-2048`, `ECDSA-P256`, `Ed25519`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { modulus, .. } => format!("RSA-{}", bit_length(modulus)),
            PublicKey::Ecdsa { curve_bits, .. } => format!("ECDSA-P{curve_bits}"),
            PublicKey::Ed25519(_) => "Ed25519".to_owned(),
        }
    }

    /// cert-manager's `spec.privateKey.algorithm` name for this key.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::Ecdsa { .. } => "ECDSA",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }

    /// Key size as cert-manager measures it: RSA modulus bits, ECDSA curve bits, 0 for Ed25519.
    pub fn size(&self) -> usize {
        match self {
            PublicKey::Rsa { modulus, .. } => bit_length(modulus),
            PublicKey::Ecdsa { curve_bits, .. } => *curve_bits,
            PublicKey::Ed25519(_) => 0,
        }
    }
}

/// The public key of the first private key in a PEM document.
pub fn public_key_of_private_pem(pem: &[u8]) -> Result<PublicKey, String> {
    let block = x509_parser::pem::Pem::iter_from_buffer(pem)
        .next()
        .ok_or("no PEM block")?
        .map_err(|e| format!("PEM: {e}"))?;
    match block.label.as_str() {
        "RSA PRIVATE KEY" => rsa_from_pkcs1(&block.contents),
        "EC PRIVATE KEY" => ec_from_sec1(&block.contents, None),
        "PRIVATE KEY" => public_key_of_pkcs8(&block.contents),
        other => Err(format!("unknown private key type: {other}")),
    }
}

/// The public key of a parsed certificate.
pub fn public_key_of_certificate(certificate: &X509Certificate<'_>) -> Result<PublicKey, String> {
    let spki = certificate.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match algorithm.as_str() {
        RSA => match spki.parsed().map_err(|e| format!("RSA public key: {e}"))? {
            X509PublicKey::RSA(rsa) => Ok(PublicKey::Rsa {
                modulus: strip_zeros(rsa.modulus),
                exponent: strip_zeros(rsa.exponent),
            }),
            _ => Err("RSA public key expected".into()),
        },
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .ok_or("EC public key without a named curve")?;
            ec_point(&curve, &spki.subject_public_key.data)
        }
        ED25519 => Ok(PublicKey::Ed25519(spki.subject_public_key.data.to_vec())),
        other => Err(format!("unsupported public key algorithm {other}")),
    }
}

/// The public key of a PKCS#8 private key (DER), as keystores hold it.
pub fn public_key_of_pkcs8(der: &[u8]) -> Result<PublicKey, String> {
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| format!("PKCS#8: {e}"))?;
    match info.algorithm.oid.to_string().as_str() {
        RSA => rsa_from_pkcs1(info.private_key),
        EC => {
            let curve = info.algorithm.parameters_oid().ok().map(|oid| oid.to_string());
            ec_from_sec1(info.private_key, curve)
        }
        ED25519 => {
            // CurvePrivateKey ::= OCTET STRING: two header bytes, then the 32-byte seed.
            let seed: [u8; 32] = match info.private_key {
                [0x04, 0x20, seed @ ..] => seed.try_into().map_err(|_| "Ed25519 seed is not 32 bytes")?,
                _ => return Err("Ed25519 private key is not an OCTET STRING".into()),
            };
            let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
            Ok(PublicKey::Ed25519(signing.verifying_key().to_bytes().to_vec()))
        }
        other => Err(format!("unsupported PKCS#8 key algorithm {other}")),
    }
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<PublicKey, String> {
    let key = pkcs1::RsaPrivateKey::try_from(der).map_err(|e| format!("PKCS#1: {e}"))?;
    Ok(PublicKey::Rsa {
        modulus: strip_zeros(key.modulus.as_bytes()),
        exponent: strip_zeros(key.public_exponent.as_bytes()),
    })
}

fn ec_from_sec1(der: &[u8], curve_from_pkcs8: Option<String>) -> Result<PublicKey, String> {
    let key = sec1::EcPrivateKey::try_from(der).map_err(|e| format!("SEC1: {e}"))?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .map(|oid: ObjectIdentifier| oid.to_string())
        .or(curve_from_pkcs8)
        .ok_or("EC private key without a named curve")?;
    if let Some(point) = key.public_key {
        return ec_point(&curve, point);
    }
    let point = match curve.as_str() {
        P256 => p256::SecretKey::from_slice(key.private_key)
            .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec()),
        P384 => p384::SecretKey::from_slice(key.private_key)
            .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec()),
        _ => {
            return Err(format!("EC private key on curve {curve} carries no public key"));
        }
    }
    .map_err(|e| format!("EC private key: {e}"))?;
    ec_point(&curve, &point)
}

fn ec_point(curve: &str, point: &[u8]) -> Result<PublicKey, String> {
    let (curve_bits, point) = match curve {
        P256 => (256, uncompressed::<p256::NistP256>(point)?),
        P384 => (384, uncompressed::<p384::NistP384>(point)?),
        P521 => (521, point.to_vec()),
        other => return Err(format!("unsupported EC curve {other}")),
    };
    Ok(PublicKey::Ecdsa { curve_bits, point })
}

fn uncompressed<C>(point: &[u8]) -> Result<Vec<u8>, String>
where
    C: p256::elliptic_curve::CurveArithmetic,
    C::AffinePoint: p256::elliptic_curve::sec1::FromEncodedPoint<C> + ToEncodedPoint<C>,
    C::FieldBytesSize: p256::elliptic_curve::sec1::ModulusSize,
{
    let key = p256::elliptic_curve::PublicKey::<C>::from_sec1_bytes(point).map_err(|e| format!("EC point: {e}"))?;
    Ok(key.to_encoded_point(false).as_bytes().to_vec())
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|b| *b != 0) {
        Some(i) => (big_endian.len() - i) * 8 - big_endian[i].leading_zeros() as usize,
        None => 0,
    }
}
