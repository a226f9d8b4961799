// Command cert-manager-cainjector runs cert-manager's CA injector as a plain process for cmarchive's local test
// clusters: the published module's pkg/controller/cainjector reconcilers on a controller-runtime manager, which
// copy a CA from the Secret (or Certificate) an object's cert-manager.io/inject-ca-from* annotation names into
// its caBundle fields. Upstream's main lives in a nested module the Go module proxy cannot serve.
//
// It serves /healthz on --healthz-listen-address: 200 once the manager's caches have synced.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
)

func main() {
	os.Exit(run())
}

func run() int {
	var kubeconfig, namespace, healthz string
	var enableCertificates, showVersion bool
	fs := pflag.NewFlagSet("cert-manager-cainjector", pflag.ContinueOnError)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster")
	fs.StringVar(&namespace, "namespace", "", "only watch this namespace (empty: all namespaces)")
	fs.BoolVar(&enableCertificates, "enable-certificates-data-source", true,
		"also inject from the Secret of the Certificate an inject-ca-from annotation names")
	fs.StringVar(&healthz, "healthz-listen-address", "127.0.0.1:9404",
		"address for /healthz (200 once the caches have synced) and /livez")
	fs.BoolVar(&showVersion, "version", false, "print the cert-manager version and exit")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if showVersion {
		fmt.Println(util.AppVersion)
		return 0
	}
	logf.InitLogs()
	defer logf.FlushLogs()
	ctrl.SetLogger(logf.Log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logf.Log.WithName("cainjector")
	ctx = logf.NewContext(ctx, log)
	if err := serve(ctx, kubeconfig, namespace, healthz, enableCertificates); err != nil && !errors.Is(err, context.Canceled) {
		log.Error(err, "cainjector failed")
		return 1
	}
	return 0
}

func serve(ctx context.Context, kubeconfig, namespace, healthz string, enableCertificates bool) error {
	log := logf.FromContext(ctx)
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading --kubeconfig: %w", err)
	}
	restConfig = util.RestConfigWithUserAgent(restConfig, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))
	var namespaces map[string]cache.Config
	if namespace != "" {
		namespaces = map[string]cache.Config{namespace: {}}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true, DefaultNamespaces: namespaces},
		// As upstream: Secrets are read directly (their metadata is watched), never cached whole.
		Client:         client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		LeaderElection: false,
		Metrics:        metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    namespace,
		EnableCertificatesDataSource: enableCertificates,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.APIServiceName:                     true,
			cainjector.CustomResourceDefinitionName:       true,
		},
	})
	if err != nil {
		return fmt.Errorf("registering the injectors: %w", err)
	}

	var ready atomic.Bool
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", healthz)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", healthz, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "caches not synced yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = srv.Shutdown(shutdownCtx)
	}()
	go func() {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			log.Info("caches synced; ready")
			ready.Store(true)
		}
	}()
	log.Info("starting cert-manager cainjector", "version", util.AppVersion, "healthz", healthz)
	return mgr.Start(ctx)
}
