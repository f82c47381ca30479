package chat.local;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The local stack's IAM service (infra/local/iam), asked by the broker's plug-ins: who signed
 * an MSK IAM token, and whether a principal may do a Kafka operation. Its URL is the broker
 * property {@code local.iam.url}.
 */
final class LocalIam {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private final String url;

    LocalIam(Map<String, ?> configs) {
        Object url = configs.get("local.iam.url");
        if (url == null) {
            throw new IllegalArgumentException("local.iam.url is not set in the broker's properties");
        }
        this.url = url.toString().replaceAll("/+$", "");
    }

    /** The answer to a JSON question; an unreachable service is an IOException. */
    JsonNode ask(String path, Map<String, String> question) throws IOException {
        HttpRequest request = HttpRequest.newBuilder(URI.create(url + path))
                .timeout(Duration.ofSeconds(5))
                .header("content-type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(question)))
                .build();
        try {
            HttpResponse<String> reply = http.send(request, HttpResponse.BodyHandlers.ofString());
            JsonNode body = JSON.readTree(reply.body());
            if (reply.statusCode() != 200) {
                throw new RefusedException(body.path("error").asText("refused"));
            }
            return body;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    /** The service answered, and its answer is no. */
    static final class RefusedException extends IOException {
        private static final long serialVersionUID = 1L;

        RefusedException(String message) {
            super(message);
        }
    }
}
