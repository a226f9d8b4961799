//! Scenario 1: a SelfSigned Issuer. Each leaf is its own CA, so a reissue changes what every client pins; the
//! TLS Secrets are all there is to keep.

use super::{Mistake, Scenario};
use crate::fixtures::{Certificate, IssuerRef, self_signed_issuer};

pub(super) fn scenario() -> Scenario {
    let ns = "s01-selfsigned";
    let mut s = Scenario::new(1, "selfsigned", "SelfSigned Issuer", &[ns]);
    s.setup.push(self_signed_issuer(Some(ns), "selfsigned"));
    let issuer = IssuerRef::issuer("selfsigned");
    s.certificate(&Certificate::new(ns, "web", issuer.clone(), "web.s01.cmarchive.test"));
    s.certificate(&Certificate::new(ns, "api", issuer, "api.s01.cmarchive.test").duration("2160h"));
    s.control_all(Mistake::NoSecrets);
    s
}
