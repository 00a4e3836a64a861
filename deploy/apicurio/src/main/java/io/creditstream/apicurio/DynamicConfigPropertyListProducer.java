package io.creditstream.apicurio;

import java.util.List;

import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

/**
 * Stand-in for the build step of apicurio-common-app-components-config-index-deployment, which is
 * not on Maven Central. That step indexes the @Dynamic config properties; with an empty list the
 * registry simply has no runtime-editable properties (static config still applies).
 */
public class DynamicConfigPropertyListProducer {

    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
