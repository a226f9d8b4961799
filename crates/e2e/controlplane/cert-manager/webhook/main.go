// Command cert-manager-webhook runs cert-manager's admission webhook as a plain process for cmarchive's local
// test clusters.
//
// Upstream's webhook main lives in a nested module the Go module proxy cannot serve; the server itself
// (validation, the CertificateRequest identity and approval plugins, TLS from a self-managed CA in a Secret) is
// built by the published module's internal/webhook package, which this wrapper may import because its module
// path lies under github.com/cert-manager/cert-manager/. Flags are the upstream webhook's own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := options.NewWebhookConfiguration()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fs := pflag.NewFlagSet("cert-manager-webhook", pflag.ContinueOnError)
	options.AddConfigFlags(fs, cfg)
	showVersion := fs.Bool("version", false, "print the cert-manager version and exit")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *showVersion {
		fmt.Println(util.AppVersion)
		return 0
	}

	logf.InitLogs()
	defer logf.FlushLogs()
	if err := logf.ValidateAndApply(&cfg.Logging); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logf.Log.WithName("webhook")
	ctx = logf.NewContext(ctx, log)

	srv, err := webhook.NewCertManagerWebhookServer(log, *cfg)
	if err != nil {
		log.Error(err, "building the webhook server")
		return 1
	}
	log.Info("starting cert-manager webhook", "version", util.AppVersion, "securePort", cfg.SecurePort, "healthzPort", cfg.HealthzPort)
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error(err, "webhook failed")
		return 1
	}
	return 0
}
