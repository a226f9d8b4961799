//! Scenario 9: many namespaces and many Certificates (500 by default, [`super::ENV_MANY`] to change), all under
//! one CA ClusterIssuer. The leaves are made here with rcgen, as if issued before the backup, so the source does
//! not spend minutes issuing; cert-manager still reconciles every one of them on both sides.

use anyhow::Result;

use super::{Control, Mistake, Options, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer, namespace};
use crate::reissuance::CertificateId;

pub(super) fn scenario(opts: &Options) -> Result<Scenario> {
    let namespaces: Vec<String> = (0..opts.many_namespaces.max(1))
        .map(|i| format!("s09-many-{i:02}"))
        .collect();
    let ns_refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let mut s = Scenario::new(9, "many", "many namespaces and Certificates", &ns_refs);
    let crn = s.source.cluster_resource_namespace.clone();
    let ca = Ca::new("cmarchive scenario 9 CA")?;
    s.setup.insert(0, namespace(&crn));
    s.setup.push(ca.secret(&crn, "s09-many-ca-keypair"));
    s.setup.push(ca_issuer(None, "s09-many-ca", "s09-many-ca-keypair"));
    s.cluster_issuers.push("s09-many-ca".into());
    s.cluster_resource_secrets.push("s09-many-ca-keypair".into());
    let issuer = IssuerRef::cluster_issuer("s09-many-ca");
    let now = jiff::Timestamp::now();
    let not_before = now - jiff::SignedDuration::from_hours(2);
    let not_after = not_before + jiff::SignedDuration::from_hours(2160);
    for i in 0..opts.many_certificates {
        let ns = &namespaces[i % namespaces.len()];
        let crt = Certificate::new(
            ns,
            &format!("app-{i:04}"),
            issuer.clone(),
            &format!("app-{i:04}.s09.cmarchive.test"),
        )
        .duration("2160h");
        let leaf = ca.issue(&crt.leaf_spec(not_before, not_after))?;
        s.setup.push(crt.issued_secret(&ca, &leaf));
        s.certificate(&crt);
    }
    // The control breaks every namespace but waits for the evidence in the first one only: enough to prove the
    // assertion fails, without waiting for hundreds of issuances.
    let first: std::collections::BTreeSet<CertificateId> = s
        .certificates
        .iter()
        .filter(|id| id.namespace == namespaces[0])
        .cloned()
        .collect();
    s.control = Some(Control {
        mistake: Mistake::NoSecrets,
        must_reissue: first,
    });
    Ok(s)
}
