//! Scenario 12: a certificate inside its renewal window at backup time. A restore cannot and should not prevent
//! that renewal: `cmarchive inspect` predicts it, cert-manager renews it, and `verify` reports it as expected,
//! not as a failure — while the other certificate of the same archive stays untouched.
//!
//! Set up with the source controller stopped: a running one would renew the certificate before the backup.

use anyhow::Result;

use super::{Mistake, Scenario, SetupMode};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer};
use crate::reissuance::CertificateId;

pub(super) fn scenario() -> Result<Scenario> {
    let ns = "s12-renewal";
    let mut s = Scenario::new(12, "renewal", "a certificate inside its renewal window", &[ns]);
    s.setup_mode = SetupMode::ControllerStopped;
    let ca = Ca::new("cmarchive scenario 12 CA")?;
    s.setup.push(ca.secret(ns, "renewal-ca"));
    s.setup.push(ca_issuer(Some(ns), "renewal-ca", "renewal-ca"));
    let issuer = IssuerRef::issuer("renewal-ca");
    let now = jiff::Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    // 90 days of life, 80 gone: past the default renewal point at two thirds of the lifetime.
    let expiring = Certificate::new(ns, "expiring", issuer.clone(), "expiring.s12.cmarchive.test").duration("2160h");
    let leaf = ca.issue(&expiring.leaf_spec(now - day * 80, now + day * 10))?;
    s.setup.push(expiring.issued_secret(&ca, &leaf));
    s.certificate(&expiring);
    let fresh = Certificate::new(ns, "fresh", issuer, "fresh.s12.cmarchive.test").duration("2160h");
    let leaf = ca.issue(&fresh.leaf_spec(now - jiff::SignedDuration::from_hours(1), now + day * 90))?;
    s.setup.push(fresh.issued_secret(&ca, &leaf));
    s.certificate(&fresh);
    s.expect_reissued.insert(CertificateId::new(ns, "expiring"));
    s.control_all(Mistake::SecretsAfterCertificates);
    Ok(s)
}
