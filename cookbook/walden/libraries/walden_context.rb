# frozen_string_literal: true

module Walden
  # Everything one recipe needs, read from the node and the host once at
  # compile time. Only node#[] is used, so the specs can pass a Hash.
  class Context
    RUN_STATE_KEY = 'walden'

    attr_reader :recipe, :attrs, :config, :state, :paths, :steps, :removals, :install, :dropin, :warnings

    # The three recipes each set up the whole host their own way; two in
    # one run list would fight over the same files.
    def self.claim!(run_state, ctx)
      other = run_state[RUN_STATE_KEY]
      if other && other.recipe != ctx.recipe
        raise ConfigError, "recipes walden::#{RECIPE_NAMES[other.recipe]} and walden::#{RECIPE_NAMES[ctx.recipe]} " \
                           'cannot be in one run list'
      end
      run_state[RUN_STATE_KEY] = ctx
    end

    RECIPE_NAMES = { default: 'default', migrate: 'migrate_from_wal_e', rollback: 'rollback_to_wal_e' }.freeze

    def initialize(node, recipe, crontab: Host.method(:crontab), utc_offset: Time.now.utc_offset)
      @recipe = recipe
      @attrs = Util.stringify(node['walden'] || {})
      legacy = Config::LEGACY_NAMESPACES.map { |path| [label(path), dig(node, path)] }
      @paths = build_paths
      probe = Config.build(walden: @attrs, legacy: legacy, utc_offset: utc_offset)
      @state = Host.detect(@paths, envdir: probe.envdir, cron_name: cron_name, cron_users: cron_users(probe),
                                   crontab: crontab)
      @config = Config.build(walden: @attrs, legacy: legacy, lzo_default: Plan.lzo_default?(recipe, @state),
                             utc_offset: utc_offset)
      @steps = Plan.steps(recipe, @state, accept_unrestorable: section('rollback')['accept_unrestorable'] == true)
      derive
    end

    def migration
      section('migration')
    end

    def cron_name
      migration['cron_name'] || Host::CRON_NAME
    end

    def cron_user
      migration['cron_user'] || config.user
    end

    # Properties for the cron resource that brings WAL-E's backup back.
    def rollback_cron
      path = config.cron_save_path
      saved = File.file?(path) ? Cron.load(File.read(path)) : nil
      Cron.restore_properties(saved: saved, schedule: config.schedule,
                              command: migration['cron_command'] || Host::CRON_COMMAND, user: cron_user)
    end

    def check_args
      check = section('check')
      { config: config, removals: removals, walden_bin: paths.walden_bin,
        timeout: check.fetch('timeout', Check::TIMEOUT), extra_args: Array(check['extra_args']) }
    end

    private

    def derive
      @removals = Envdir.removals(Envdir.read_manifest(config.manifest_path), config.env.keys)
      @install = Install.plan(@attrs['package'], @attrs['apt'])
      @dropin = Systemd.dropin(config, walden_bin: paths.walden_bin, exec_start: section('systemd')['exec_start'])
      @warnings = config.warnings + state_warnings
    end

    def state_warnings
      return ["no WAL-E found on this host; installing walden and the #{paths.wal_e} link only"] if
        recipe == :migrate && state.kind == :fresh
      return ['WAL-E was restored earlier; nothing to move back'] if recipe == :rollback && !state.aside

      []
    end

    def build_paths
      m = migration
      Host::Paths.new(install: m['install_path'] || Host::INSTALL_PATH, aside: m['aside_path'] || Host::ASIDE_PATH,
                      link_target: m['link_target'] || Host::LINK_TARGET,
                      walden_bin: @attrs['binary'] || Host::WALDEN_BIN)
    end

    def cron_users(config)
      [migration['cron_user'], config.user, 'root'].compact.uniq
    end

    def section(name)
      Util.hash_or_empty(@attrs[name])
    end

    def label(path)
      "node#{path.map { |p| "['#{p}']" }.join}"
    end

    def dig(node, path)
      path.reduce(node) do |obj, key|
        break nil unless obj.respond_to?(:[]) && !obj.is_a?(String)

        obj[key]
      end
    end
  end
end
