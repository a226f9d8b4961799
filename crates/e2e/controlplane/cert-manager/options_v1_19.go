//go:build cm_v1_19

package main

import "github.com/cert-manager/cert-manager/pkg/controller"

// setReleaseOptions: v1.19 has none of the options later releases added (its back-off is fixed in code).
func setReleaseOptions(*controller.ContextOptions) {}
