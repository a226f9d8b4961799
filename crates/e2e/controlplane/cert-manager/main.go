// Command cert-manager-controller runs cert-manager's controllers as a plain process for cmarchive's local
// test clusters.
//
// cert-manager's own main package lives in a nested module that the Go module proxy cannot serve, so this
// program assembles the same controllers from the published github.com/cert-manager/cert-manager module:
// importing the controller and issuer packages registers them, pkg/controller builds their shared context,
// and this file starts the enabled ones. It supports the flags the cmarchive harness needs, spelled like the
// upstream controller's, and serves /healthz (ready once every informer cache has synced) and /livez.
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/component-base/featuregate"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"

	// Each of these packages registers its controllers (or issuer back-end) in an init function.
	// The Venafi issuer is left out: cert-manager v1.21 needs github.com/Venafi/vcert/v5 v5.13.x, which the
	// Go module proxy refuses to serve ("403 Forbidden: This module version is not available").
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/gateways"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/vault"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
)

// gatewayShim is the controller --enable-gateway-api adds (cert-manager's own name for it).
const gatewayShim = "gateway-shim"

// defaultControllers is what `*` means in --controllers: the set a stock cert-manager installation runs.
var defaultControllers = []string{
	"issuers", "clusterissuers", "certificates-metrics", "ingress-shim", "orders", "challenges",
	"certificaterequests-issuer-acme", "certificaterequests-approver", "certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned", "certificaterequests-issuer-vault",
	"certificaterequests-issuer-venafi", "certificates-trigger", "certificates-issuing",
	"certificates-key-manager", "certificates-request-manager", "certificates-readiness",
	"certificates-revision-manager",
}

type options struct {
	kubeconfig               string
	apiServerHost            string
	namespace                string
	clusterResourceNamespace string
	leaderElect              bool
	enableOwnerRef           bool
	enableGatewayAPI         bool
	dns01Nameservers         []string
	dns01NameserversOnly     bool
	dns01CheckRetryPeriod    time.Duration
	featureGates             string
	controllers              []string
	workers                  int
	healthzAddress           string
	metricsAddress           string
	kubeAPIQPS               float32
	kubeAPIBurst             int
	copiedAnnotationPrefixes []string
	showVersion              bool
}

func main() {
	os.Exit(run())
}

func run() int {
	opts := options{}
	fs := pflag.NewFlagSet("cert-manager-controller", pflag.ContinueOnError)
	fs.StringVar(&opts.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster to manage")
	fs.StringVar(&opts.apiServerHost, "master", "", "API server URL, overriding the kubeconfig's")
	fs.StringVar(&opts.namespace, "namespace", "", "only watch this namespace (empty: all namespaces)")
	fs.StringVar(&opts.clusterResourceNamespace, "cluster-resource-namespace", "kube-system",
		"namespace holding the Secrets that ClusterIssuers refer to")
	fs.BoolVar(&opts.leaderElect, "leader-elect", false,
		"accepted for command-line compatibility; only false is supported")
	fs.BoolVar(&opts.enableOwnerRef, "enable-certificate-owner-ref", false,
		"make each Certificate the owner of its Secret, so deleting the Certificate deletes the Secret")
	fs.BoolVar(&opts.enableGatewayAPI, "enable-gateway-api", false,
		"run gateway-shim (Certificates for annotated Gateways); the Gateway API CRDs must be installed")
	fs.StringSliceVar(&opts.dns01Nameservers, "dns01-recursive-nameservers", nil,
		"host:port of the DNS servers DNS-01 self-checks ask (empty: the system resolvers)")
	fs.BoolVar(&opts.dns01NameserversOnly, "dns01-recursive-nameservers-only", false,
		"ask only --dns01-recursive-nameservers, not the zone's authoritative servers")
	fs.DurationVar(&opts.dns01CheckRetryPeriod, "dns01-check-retry-period", 10*time.Second,
		"how often a DNS-01 self-check is retried")
	fs.StringVar(&opts.featureGates, "feature-gates", "", "comma-separated Name=true|false pairs")
	fs.StringSliceVar(&opts.controllers, "controllers", []string{"*"},
		"controllers to run: '*' for the default set, a name to add one, '-name' to remove one")
	fs.IntVar(&opts.workers, "concurrent-workers", 5, "workers per controller")
	fs.StringVar(&opts.healthzAddress, "internal-healthz-listen-address", "127.0.0.1:9403",
		"address for /healthz (200 once every informer has synced) and /livez")
	fs.StringVar(&opts.metricsAddress, "metrics-listen-address", "",
		"address for Prometheus metrics (empty: no metrics server)")
	fs.Float32Var(&opts.kubeAPIQPS, "kube-api-qps", 20, "client QPS limit")
	fs.IntVar(&opts.kubeAPIBurst, "kube-api-burst", 50, "client burst limit")
	fs.StringSliceVar(&opts.copiedAnnotationPrefixes, "copied-annotation-prefixes",
		[]string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
		"annotation prefixes copied from a Certificate to its CertificateRequests")
	fs.BoolVar(&opts.showVersion, "version", false, "print the cert-manager version and exit")

	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)

	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if opts.showVersion {
		fmt.Println(util.AppVersion)
		return 0
	}
	if opts.leaderElect {
		fmt.Fprintln(os.Stderr, "--leader-elect=true is not supported by this build; run a single controller")
		return 2
	}

	logf.InitLogs()
	defer logf.FlushLogs()

	if err := setFeatureGates(opts.featureGates); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")

	if err := serve(ctx, &opts); err != nil && !errors.Is(err, context.Canceled) {
		logf.Log.Error(err, "controller failed")
		return 1
	}
	return 0
}

// setFeatureGates applies "A=true,B=false" to cert-manager's process-wide feature gate.
func setFeatureGates(spec string) error {
	gates := map[string]bool{}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("--feature-gates: %q is not Name=true|false", pair)
		}
		enabled, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("--feature-gates: %q: %w", pair, err)
		}
		gates[strings.TrimSpace(name)] = enabled
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(gates); err != nil {
		return fmt.Errorf("--feature-gates: %w", err)
	}
	return nil
}

// enabledControllers resolves the --controllers list against the registered controllers.
func enabledControllers(requested []string) (sets.Set[string], error) {
	known := controller.Known()
	enabled := sets.New[string]()
	disabled := sets.New[string]()
	for _, name := range requested {
		switch {
		case name == "*":
			for _, d := range defaultControllers {
				// Controllers not compiled into this build (Venafi) are skipped, not fatal.
				if _, ok := known[d]; ok {
					enabled.Insert(d)
				}
			}
		case strings.HasPrefix(name, "-"):
			disabled.Insert(strings.TrimPrefix(name, "-"))
		default:
			enabled.Insert(name)
		}
	}
	for name := range enabled.Union(disabled) {
		if _, ok := known[name]; !ok {
			all := make([]string, 0, len(known))
			for k := range known {
				all = append(all, k)
			}
			sort.Strings(all)
			return nil, fmt.Errorf("unknown controller %q (known: %s)", name, strings.Join(all, ","))
		}
	}
	return enabled.Difference(disabled), nil
}

func serve(ctx context.Context, opts *options) error {
	log := logf.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	enabled, err := enabledControllers(opts.controllers)
	if err != nil {
		return err
	}
	// Like the upstream controller: gateway-shim runs only when asked for and its feature gate is on; the
	// context factory then fails fast when the Gateway API CRDs are missing.
	gatewayAPI := opts.enableGatewayAPI &&
		utilfeature.DefaultFeatureGate.Enabled(featuregate.Feature("ExperimentalGatewayAPISupport"))
	if gatewayAPI {
		enabled.Insert(gatewayShim)
	} else {
		enabled.Delete(gatewayShim)
	}

	dns01Nameservers := dnsutil.RecursiveNameservers
	if len(opts.dns01Nameservers) > 0 {
		dns01Nameservers = opts.dns01Nameservers
	}
	quantity := func(s string) resource.Quantity { return resource.MustParse(s) }
	contextOptions := controller.ContextOptions{
		Kubeconfig:         opts.kubeconfig,
		APIServerHost:      opts.apiServerHost,
		KubernetesAPIQPS:   opts.kubeAPIQPS,
		KubernetesAPIBurst: opts.kubeAPIBurst,
		Namespace:          opts.namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        opts.clusterResourceNamespace,
			ClusterIssuerAmbientCredentials: true,
			IssuerAmbientCredentials:        false,
		},
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 "quay.io/jetstack/cert-manager-acmesolver:" + util.AppVersion,
			HTTP01SolverResourceRequestCPU:    quantity("10m"),
			HTTP01SolverResourceRequestMemory: quantity("64Mi"),
			HTTP01SolverResourceLimitsCPU:     quantity("100m"),
			HTTP01SolverResourceLimitsMemory:  quantity("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			DNS01Nameservers:                  dns01Nameservers,
			DNS01CheckRetryPeriod:             opts.dns01CheckRetryPeriod,
			DNS01CheckAuthoritative:           !opts.dns01NameserversOnly,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		ConfigOptions:    controller.ConfigOptions{EnableGatewayAPI: gatewayAPI},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                "cert-manager.io",
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
		},
		CertificateOptions: controller.CertificateOptions{
			EnableOwnerRef:           opts.enableOwnerRef,
			CopiedAnnotationPrefixes: opts.copiedAnnotationPrefixes,
		},
	}
	setReleaseOptions(&contextOptions)
	factory, err := controller.NewContextFactory(ctx, contextOptions)
	if err != nil {
		return fmt.Errorf("building controller context: %w", err)
	}
	base, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building controller context: %w", err)
	}

	var ready atomic.Bool
	healthLn, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.healthzAddress)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", opts.healthzAddress, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "informers not synced yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	servers := []*http.Server{{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	listeners := []net.Listener{healthLn}
	if opts.metricsAddress != "" {
		metricsLn, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.metricsAddress)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", opts.metricsAddress, err)
		}
		servers = append(servers, base.Metrics.NewServer(metricsLn))
		listeners = append(listeners, metricsLn)
	}

	errs := make(chan error, len(enabled)+len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		log.Info("serving", "address", listeners[i].Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
	}

	names := sets.List(enabled)
	log.Info("starting cert-manager controller", "version", util.AppVersion, "controllers", names,
		"clusterResourceNamespace", opts.clusterResourceNamespace, "enableCertificateOwnerRef", opts.enableOwnerRef, "gatewayAPI", gatewayAPI)
	// Controllers must be constructed before the informer factories start: construction is what registers
	// the informers each controller needs.
	for _, name := range names {
		iface, err := controller.Known()[name](factory)
		if err != nil {
			cancel()
			return fmt.Errorf("constructing controller %s: %w", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := iface.Run(opts.workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
			}
		}()
	}

	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	if base.GatewaySolverEnabled {
		base.GWShared.Start(ctx.Done())
	}

	go func() {
		synced := true
		for informer, ok := range base.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				synced = false
				log.Info("informer did not sync", "type", informer.String())
			}
		}
		for informer, ok := range base.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				synced = false
				log.Info("informer did not sync", "type", informer)
			}
		}
		for informer, ok := range base.HTTP01ResourceMetadataInformersFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				synced = false
				log.Info("informer did not sync", "resource", informer.String())
			}
		}
		if base.GatewaySolverEnabled {
			for informer, ok := range base.GWShared.WaitForCacheSync(ctx.Done()) {
				if !ok {
					synced = false
					log.Info("informer did not sync", "type", informer.String())
				}
			}
		}
		if synced {
			log.Info("all informers synced; ready")
			ready.Store(true)
		}
	}()

	var result error
	select {
	case <-ctx.Done():
	case result = <-errs:
	}
	cancel()
	for _, srv := range servers {
		shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shutdownCtx)
		done()
	}
	wg.Wait()
	base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	base.GWShared.Shutdown()
	base.KubeSharedInformerFactory.Shutdown()
	base.SharedInformerFactory.Shutdown()
	log.Info("controller stopped")
	return result
}
