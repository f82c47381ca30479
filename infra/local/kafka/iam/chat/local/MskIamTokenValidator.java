package chat.local;

import java.io.IOException;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;

import com.fasterxml.jackson.databind.JsonNode;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerExtensionsValidatorCallback;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;

/**
 * Validates MSK IAM tokens on the broker's IAM listener, as MSK does: the token is a presigned
 * {@code kafka-cluster:Connect} request, verified by the local IAM service, which also checks
 * that the signer may connect. The session's principal is the function that signed it.
 */
public final class MskIamTokenValidator implements AuthenticateCallbackHandler {
    private LocalIam iam;

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> jaas) {
        iam = new LocalIam(configs);
    }

    @Override
    public void handle(Callback[] callbacks) throws IOException, UnsupportedCallbackException {
        for (Callback callback : callbacks) {
            if (callback instanceof OAuthBearerValidatorCallback validation) {
                validate(validation);
            } else if (callback instanceof OAuthBearerExtensionsValidatorCallback extensions) {
                // librdkafka sends no extensions; any it sends mean nothing here.
                extensions.inputExtensions().map().keySet().forEach(extensions::valid);
            } else {
                throw new UnsupportedCallbackException(callback);
            }
        }
    }

    private void validate(OAuthBearerValidatorCallback callback) {
        String token = callback.tokenValue();
        try {
            JsonNode who = iam.ask("/kafka/authenticate", Map.of("token", token));
            String principal = who.path("principal").asText();
            long expiresAt = who.path("expires_at_ms").asLong();
            long now = System.currentTimeMillis();
            callback.token(new OAuthBearerToken() {
                @Override public String value() { return token; }
                @Override public Set<String> scope() { return Collections.emptySet(); }
                @Override public long lifetimeMs() { return expiresAt; }
                @Override public String principalName() { return principal; }
                @Override public Long startTimeMs() { return now; }
            });
        } catch (LocalIam.RefusedException e) {
            callback.error("invalid_token", null, null);
        } catch (IOException e) {
            callback.error("temporarily_unavailable", null, null);
        }
    }

    @Override
    public void close() {}
}
