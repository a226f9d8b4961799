//go:build cm_v1_20

package main

import (
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
)

// setReleaseOptions: v1.20 has a minimum back-off for failed CertificateRequests but no maximum and no extra
// Gateway API protocols.
func setReleaseOptions(o *controller.ContextOptions) {
	o.CertificateOptions.CertificateRequestMinimumBackoffDuration = time.Hour
}
