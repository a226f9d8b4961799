//! Scenario 3: a CA ClusterIssuer, whose Secret lives in the controller's cluster resource namespace — once with
//! the Helm chart's `cert-manager`, once with a source using another namespace, which the restore must remap to the
//! target's. Its control strips the issuer annotations from the Secrets: harmless for an Issuer, but for a
//! ClusterIssuer cert-manager treats absent annotations as a mismatch and reissues.

use anyhow::Result;

use super::{Check, ClusterVariant, Mistake, Scenario};
use crate::fixtures::{Ca, Certificate, IssuerRef, ca_issuer, namespace};

pub(super) fn scenario(source: &ClusterVariant, name: &'static str) -> Result<Scenario> {
    let custom = source.cluster_resource_namespace != ClusterVariant::default().cluster_resource_namespace;
    let (ns, issuer, title) = if custom {
        (
            "s03-cluster-issuer-crn",
            "s03-remapped-ca",
            "ClusterIssuer, source with a non-default cluster resource namespace",
        )
    } else {
        (
            "s03-cluster-issuer",
            "s03-corp-ca",
            "ClusterIssuer with its Secret in the cluster resource namespace",
        )
    };
    let crn = source.cluster_resource_namespace.as_str();
    let mut s = Scenario::new(3, name, title, &[ns]);
    s.source = source.clone();
    let ca = Ca::new(&format!("cmarchive scenario 3 {name}"))?;
    let secret = format!("{issuer}-keypair");
    s.setup.insert(0, namespace(crn));
    s.setup.push(ca.secret(crn, &secret));
    s.setup.push(ca_issuer(None, issuer, &secret));
    s.cluster_issuers.push(issuer.to_owned());
    s.cluster_resource_secrets.push(secret.clone());
    let r = IssuerRef::cluster_issuer(issuer);
    s.certificate(&Certificate::new(ns, "portal", r.clone(), "portal.s03.cmarchive.test"));
    s.certificate(&Certificate::new(ns, "billing", r, "billing.s03.cmarchive.test"));
    // Checked in the target's cluster resource namespace: the runner remaps it like the restore must.
    s.checks.push(Check::SecretsIdentical(vec![(crn.to_owned(), secret)]));
    s.control_all(Mistake::IssuerAnnotationsStripped);
    Ok(s)
}
