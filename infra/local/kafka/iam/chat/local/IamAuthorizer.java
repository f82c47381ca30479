package chat.local;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.common.Endpoint;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.server.authorizer.AclCreateResult;
import org.apache.kafka.server.authorizer.AclDeleteResult;
import org.apache.kafka.server.authorizer.Action;
import org.apache.kafka.server.authorizer.AuthorizableRequestContext;
import org.apache.kafka.server.authorizer.AuthorizationResult;
import org.apache.kafka.server.authorizer.Authorizer;
import org.apache.kafka.server.authorizer.AuthorizerServerInfo;

/**
 * Authorizes requests on the broker's IAM listener as MSK's IAM access control does: each Kafka
 * operation is the {@code kafka-cluster:*} action MSK documents for it, allowed or not by the
 * signing function's role in infra/template.yaml (the local IAM service decides; decisions are
 * cached, since the policies only change when the stack restarts). Requests on the other
 * listeners (the plaintext one the stack's tools and tests use, and the controller's) are the
 * local administrator's and always allowed.
 */
public final class IamAuthorizer implements Authorizer {
    private static final String IAM_LISTENER = "IAM";
    private final Map<String, AuthorizationResult> decisions = new ConcurrentHashMap<>();
    private LocalIam iam;

    @Override
    public void configure(Map<String, ?> configs) {
        iam = new LocalIam(configs);
    }

    @Override
    public Map<Endpoint, ? extends CompletionStage<Void>> start(AuthorizerServerInfo serverInfo) {
        Map<Endpoint, CompletableFuture<Void>> ready = new java.util.HashMap<>();
        for (Endpoint endpoint : serverInfo.endpoints()) {
            ready.put(endpoint, CompletableFuture.completedFuture(null));
        }
        return ready;
    }

    @Override
    public List<AuthorizationResult> authorize(AuthorizableRequestContext context, List<Action> actions) {
        List<AuthorizationResult> results = new ArrayList<>(actions.size());
        for (Action action : actions) {
            results.add(decide(context, action.operation(), action.resourcePattern().resourceType(),
                    action.resourcePattern().name()));
        }
        return results;
    }

    @Override
    public AuthorizationResult authorizeByResourceType(
            AuthorizableRequestContext context, AclOperation operation, ResourceType resourceType) {
        // Kafka asks this when IDEMPOTENT_WRITE was denied ("may it write any topic?"); MSK's
        // IAM access control has no such fallback: WriteDataIdempotently is needed.
        return isAdministrator(context) ? AuthorizationResult.ALLOWED : AuthorizationResult.DENIED;
    }

    private static boolean isAdministrator(AuthorizableRequestContext context) {
        return !IAM_LISTENER.equals(context.listenerName());
    }

    private AuthorizationResult decide(
            AuthorizableRequestContext context, AclOperation operation, ResourceType type, String name) {
        if (isAdministrator(context)) {
            return AuthorizationResult.ALLOWED;
        }
        String principal = context.principal().getName();
        String key = principal + "\n" + operation + "\n" + type + "\n" + name;
        AuthorizationResult cached = decisions.get(key);
        if (cached != null) {
            return cached;
        }
        try {
            boolean allowed = iam.ask("/kafka/authorize", Map.of(
                    "principal", principal,
                    "operation", operation.name(),
                    "resource_type", type.name(),
                    "resource_name", name)).path("allowed").asBoolean(false);
            AuthorizationResult result = allowed ? AuthorizationResult.ALLOWED : AuthorizationResult.DENIED;
            decisions.put(key, result);
            return result;
        } catch (IOException e) {
            // Not cached: the service may be back for the next request.
            return AuthorizationResult.DENIED;
        }
    }

    @Override
    public List<? extends CompletionStage<AclCreateResult>> createAcls(
            AuthorizableRequestContext context, List<AclBinding> bindings) {
        throw new UnsupportedVersionException("ACLs come from infra/template.yaml locally");
    }

    @Override
    public List<? extends CompletionStage<AclDeleteResult>> deleteAcls(
            AuthorizableRequestContext context, List<AclBindingFilter> filters) {
        throw new UnsupportedVersionException("ACLs come from infra/template.yaml locally");
    }

    @Override
    public Iterable<AclBinding> acls(AclBindingFilter filter) {
        return Collections.emptyList();
    }

    @Override
    public void close() {}
}
