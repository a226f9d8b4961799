//! The local cluster's key material, made with rcgen: one CA that signs the API server's serving certificate
//! and the client certificates, plus the service-account token signing key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Paths of the files written by [`Pki::write`].
#[derive(Clone, Debug)]
pub struct Pki {
    /// CA certificate: trusted by clients for serving, and by the API server for client certificates.
    pub ca_cert: PathBuf,
    /// API server serving certificate and key.
    pub serving_cert: PathBuf,
    /// Key of [`Pki::serving_cert`].
    pub serving_key: PathBuf,
    /// Service-account token signing key (private, PKCS#8) and its public half.
    pub sa_key: PathBuf,
    /// Public key the API server verifies service-account tokens with.
    pub sa_pub: PathBuf,
    dir: PathBuf,
    ca_cert_pem: String,
    ca_key_pem: String,
}

/// A client certificate and key on disk.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Pki {
    /// Generates the CA, the serving certificate (valid for `localhost`, 127.0.0.1 and the in-cluster names of
    /// the `kubernetes` Service) and the service-account key, and writes them under `dir`.
    pub fn write(dir: &Path, service_ip: IpAddr) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn("cmarchive-e2e local CA", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_cert_pem = ca_cert.pem();
        let ca_key_pem = ca_key.serialize_pem();

        let issuer = Issuer::new(ca_params, &ca_key);
        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
            "kubernetes.default.svc.cluster.local".to_owned(),
        ])?;
        serving
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        serving.subject_alt_names.push(SanType::IpAddress(service_ip));
        serving.distinguished_name = dn("kube-apiserver", None);
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &issuer)?;

        let sa = KeyPair::generate()?;
        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
            dir: dir.to_owned(),
            ca_cert_pem,
            ca_key_pem,
        };
        write(&pki.ca_cert, &pki.ca_cert_pem)?;
        write(&pki.serving_cert, &serving_cert.pem())?;
        write(&pki.serving_key, &serving_key.serialize_pem())?;
        write(&pki.sa_key, &sa.serialize_pem())?;
        write(&pki.sa_pub, &sa.public_key_pem())?;
        Ok(pki)
    }

    /// Issues a client certificate for `user` in `groups` (`system:masters` makes it cluster-admin).
    pub fn client(&self, file_stem: &str, user: &str, groups: &[&str]) -> anyhow::Result<ClientCert> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert_pem, &ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(user, Some(groups));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        let out = ClientCert {
            cert: self.dir.join(format!("{file_stem}.crt")),
            key: self.dir.join(format!("{file_stem}.key")),
        };
        write(&out.cert, &cert.pem())?;
        write(&out.key, &key.serialize_pem())?;
        Ok(out)
    }
}

fn dn(common_name: &str, organizations: Option<&[&str]>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations.unwrap_or_default() {
        dn.push(DnType::OrganizationName, *org);
    }
    dn
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if path.extension().is_some_and(|e| e == "key") {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Writes a kubeconfig for `server` that authenticates with `client` and trusts `ca`.
pub fn write_kubeconfig(path: &Path, name: &str, server: &str, ca: &Path, client: &ClientCert) -> anyhow::Result<()> {
    // Plain YAML with quoted scalars; file references keep it short and readable.
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: \"{server}\"\n    \
         certificate-authority: \"{ca}\"\nusers:\n- name: {name}-admin\n  user:\n    client-certificate: \"{cert}\"\n    \
         client-key: \"{key}\"\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n\
         current-context: {name}\n",
        ca = ca.display(),
        cert = client.cert.display(),
        key = client.key.display(),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
