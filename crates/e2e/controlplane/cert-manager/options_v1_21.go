//go:build !cm_v1_19 && !cm_v1_20

package main

import (
	"time"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/cert-manager/cert-manager/pkg/controller"
)

// setReleaseOptions sets the controller options that differ between cert-manager releases, with the upstream
// controller's defaults; scripts/build-control-plane picks this file's siblings with a cm_v1_<minor> build tag
// for older releases. This one serves v1.21 and anything newer.
func setReleaseOptions(o *controller.ContextOptions) {
	o.IngressShimOptions.GatewayAPIExtraProtocols = sets.New[string]()
	o.CertificateOptions.CertificateRequestMinimumBackoffDuration = time.Hour
	o.CertificateOptions.CertificateRequestMaximumBackoffDuration = 32 * time.Hour
}
